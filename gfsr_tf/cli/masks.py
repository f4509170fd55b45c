"""gfsr masks: relevance masks propagated from a few annotations (SLIC -> ResNet50 segment
embeddings -> k-means concepts), with the paper's Fig 8."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("masks", help="relevance masks propagated from a few annotations")
    p.add_argument("--images", help="folder of training images (default: the embedded benchmark "
                   "with simulated scribbles)")
    p.add_argument("--annotations", help="folder of annotation masks or a JSON of segment ids")
    p.add_argument("--out", default="masks")
    p.add_argument("--size", type=int, default=128, help="images are resized to this (px)")
    p.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--n-images", type=int, default=200, help="benchmark images (no --images)")
    p.add_argument("--k", type=int, help="concepts (default 7)")
    p.add_argument("--n-segments", type=int, help="SLIC segments per image (default 50)")
    p.add_argument("--compactness", type=float, help="SLIC compactness (default 0.2, chest X-ray)")
    p.add_argument("--layer", help="ResNet50 embedding layer (default conv2_block3_out)")
    p.add_argument("--position-weight", type=float, help="extension (default 0, the paper): "
                   "append each segment's position (height, distance from the midline) to its "
                   "embedding with this weight, so concepts also group by where segments lie "
                   "(16 with --k 15 on chest X-rays: docs/studies/real-shortcut.md)")
    p.add_argument("--weights", help="embedding weights: auto, imagenet, none, a path or a "
                   "trained .keras classifier")
    p.add_argument("--stream-above-mb", type=float, default=4096.0, help="--images whose pixels "
                   "at --size exceed this many MB are decoded once into OUT/cache/images and "
                   "their masks made in resumable shards of --shard-size images (parallel "
                   "SLIC; memory flat in the number of images)")
    p.add_argument("--shard-size", type=int, default=10_000)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> dict:
    import cv2
    import numpy as np
    from ..config import ConceptConfig, BenchmarkConfig
    from ..datasets.base import ImageSet
    from ..datasets.images import image_files, load_images
    from ..datasets.streaming import cache_images, pixel_mb
    from ..guidance.masks import propagated_masks
    from ..report.figures import plot_concepts
    concepts = ConceptConfig(**{key: getattr(args, key) for key in
                                ("k", "n_segments", "compactness", "layer",
                                 "position_weight")
                                if getattr(args, key) is not None})
    if args.weights is not None:
        concepts.weights = None if args.weights.lower() == "none" else args.weights
    out = Path(args.out)
    if args.images:
        if not args.annotations:
            raise ValueError("--images needs --annotations (a mask folder or a segment JSON)")
        paths = image_files([args.images])
        if pixel_mb(len(paths), args.size, args.channels) > args.stream_above_mb:
            images, kept = cache_images(paths, args.size, args.channels, out / "cache" / "images",
                                        progress=not args.quiet)
            paths = [paths[i] for i in kept]
        else:
            images = load_images(paths, args.size, args.channels)
        train = ImageSet(images, np.zeros(len(paths), np.int64), names=[p.name for p in paths])
    else:  # the embedded benchmark's training split with simulated scribbles
        from ..datasets.synthetic import make_split
        train = make_split(BenchmarkConfig(image_size=args.size), "train", args.n_images)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    result, section = propagated_masks(train, concepts, args.annotations, cache_dir=out / "cache",
                                       verbose=0 if args.quiet else 1,
                                       shard_size=args.shard_size)
    stems = [Path(n).stem for n in train.names] or [f"{i:05d}" for i in range(len(train))]
    for a in range(0, len(stems), 1024):    # a block at a time: sharded masks stay on disk
        for stem, mask in zip(stems[a:a + 1024], result.masks[a:a + 1024]):
            cv2.imwrite(str(out / "masks" / f"{stem}.png"), (mask * 255).round().astype(np.uint8))
    pick = np.arange(min(4, len(train)))
    plot_concepts(train.images[pick], result.segments[pick], result.concept_map[pick],
                  result.masks[pick], out / "concepts.png", [stems[i] for i in pick])
    (out / "masks.json").write_text(json.dumps(section, indent=2))
    quality = f"; lung pixel AUC {section['lung_pixel_auc']:.3f}" if "lung_pixel_auc" in section \
        else ""
    print(f"{len(train)} masks in {out / 'masks'} ({section['timings']['images_per_s']:.0f} "
          f"images/s{', cached' if section['cached'] else ''}){quality}; figure {out / 'concepts.png'}")
    return section
