"""Relevance-mask generation throughput and quality: SLIC, segment embeddings and k-means broken
down, end to end in images/s, on the embedded benchmark with simulated scribbles on 5 images per
class (no cache). Also prints the masks' lung-field pixel ROC-AUC.

    python benchmarks/relevance_masks.py --size 128 --images 256
    python benchmarks/relevance_masks.py --size 64 --images 800 --layer conv3_block4_out --k 10
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gfsr_tf.config import BenchmarkConfig, ConceptConfig  # noqa: E402
from gfsr_tf.datasets.synthetic import make_split  # noqa: E402
from gfsr_tf.guidance.masks import propagated_masks  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--layer", help="embedding layer (default: ConceptConfig's)")
    p.add_argument("--k", type=int, help="concepts (default: ConceptConfig's)")
    p.add_argument("--weights", default="auto", help="auto | imagenet | none | path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    concepts = ConceptConfig(seed=args.seed,
                             weights=None if args.weights == "none" else args.weights)
    if args.layer:
        concepts.layer = args.layer
    if args.k:
        concepts.k = args.k
    train = make_split(BenchmarkConfig(image_size=args.size, seed=args.seed), "train", args.images)
    warnings: list[str] = []
    _, section = propagated_masks(train, concepts, seed=args.seed, warnings=warnings, verbose=1)
    t = section["timings"]
    result = {"image_size": args.size, "images": args.images, "layer": concepts.layer,
              "k": concepts.k, "weights": args.weights, "warnings": warnings,
              "images_per_s": t["images_per_s"],
              "seconds": {k: t[k] for k in ("slic_s", "embeddings_s", "kmeans_s", "total_s")},
              "lung_pixel_auc": section["lung_pixel_auc"],
              "mean_relevance": section["mean_relevance"]}
    print(f"{args.images} images at {args.size} px: {t['images_per_s']:.1f} images/s end to end "
          f"(SLIC {t['slic_s']:.1f} s, embeddings {t['embeddings_s']:.1f} s, k-means "
          f"{t['kmeans_s']:.1f} s); lung pixel AUC {section['lung_pixel_auc']:.3f}; mean relevance "
          + ", ".join(f"{k} {v:.2f}" for k, v in section["mean_relevance"].items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"relevance_masks_{args.size}px.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
