"""Template annotations for a real dataset: the coarse regions a non-expert would mark on
5 training images per class - lung fields (chest X-ray), the fundus disc (retina), the central
lesion (dermoscopy) - written in the annotation-folder format (`<image stem>.png`, 255 = marked)
with `source.json` saying they are templates, not a clinician's, and `preview.png`.

    python experiments/make_template_annotations.py --preset retina \\
        --data-dir retinamnist.npz --out annotations/retina
    python experiments/retina_gfsr.py --data-dir retinamnist.npz --annotations annotations/retina

The experiments draw the same templates on their own when --annotations is not given; this script
writes them where you can inspect or replace them. The training split is the study's (same
preset, size and seed), so the file stems match the images the study trains on.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from gfsr_tf.cli.common import import_tensorflow_quietly  # noqa: E402
from gfsr_tf.presets import PRESETS, preset  # noqa: E402
from gfsr_tf.guidance.templates import TEMPLATES  # noqa: E402


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="pneumoniamnist", choices=sorted(PRESETS))
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True, help="annotation folder to write")
    p.add_argument("--template", choices=TEMPLATES, help="default: the preset's")
    p.add_argument("--image-size", type=int, help="default: the preset's")
    p.add_argument("--per-class", type=int, help="default: the preset's (5)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import_tensorflow_quietly()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gfsr_tf.datasets import load_dataset
    from gfsr_tf.guidance.templates import write_template_annotations
    config = preset(args.preset)
    kind = args.template or config.annotation_template
    if kind is None:
        sys.exit(f"error: preset {args.preset} has no template; choose --template")
    size = args.image_size or config.benchmark.image_size
    try:
        train = load_dataset(config.dataset, args.data_dir, size, seed=args.seed,
                             val_fraction=config.val_fraction)["train"]
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    out = write_template_annotations(train.images, train.labels, train.names, kind, args.out,
                                     args.per_class or config.annotations_per_class)
    files = sorted(out.glob("*.png"))
    index = {Path(n).stem: i for i, n in enumerate(train.names)}
    cols = min(5, len(files))
    rows = -(-len(files) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for ax, f in zip(axes.ravel(), files):
        i = index[f.stem]
        image = train.images[i, ..., 0] if train.images.shape[-1] == 1 else train.images[i]
        ax.imshow(image, cmap="gray")
        ax.contour(plt.imread(f) > 0, levels=[0.5], colors="lime", linewidths=1)
        ax.set_title(f"{f.stem} ({train.class_names[train.labels[i]]})"[:30], fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "preview.png", dpi=110)
    plt.close(fig)
    print(f"{len(files)} template annotations ({kind}) in {out}; preview: {out / 'preview.png'}")
    return out


if __name__ == "__main__":
    main()
