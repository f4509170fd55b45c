"""Pneumonia: baseline vs GFSR (guided focus) on the embedded shortcut benchmark (default) or on
the real Kermany chest X-ray layout (--data-dir).

Trains both models with the same seed, split and initial weights, evaluates them (Table 1
metrics on correlated and decorrelated test splits, flip/agreement rate when the "R" marker is
removed or its corner cropped, Grad-CAM lesion hit rate) and writes runs/<name>/: report.json,
summary.md, roc.png, confusion.png, gradcam_grid.png, training.png. Rerun the same command to
resume an interrupted run.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report

from gfsr_tf.config import PRESETS, preset  # noqa: E402
from gfsr_tf.pipeline import run_study  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="benchmark",
                   help=f"named configuration: {', '.join(sorted(PRESETS))} (default: benchmark; "
                        "'paper' = 128 px, ImageNet weights, the paper's hyper-parameters)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute (for tests)")
    p.add_argument("--data-dir", help="real data in the Kermany layout "
                   "chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg (default: embedded benchmark)")
    p.add_argument("--out", default="runs", help="output root (default: runs)")
    p.add_argument("--name", help="run folder name (default: the preset's)")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--image-size", type=int, help="square input size in pixels")
    p.add_argument("--lambda", dest="lam", type=float, help="relevance loss weight for GFSR")
    p.add_argument("--layer", help="Grad-CAM target layer (default conv2_block3_out; the paper's "
                   "conv3_block4_out with --preset paper)")
    p.add_argument("--weights", help="'auto' (ImageNet if obtainable, else random init with a "
                   "warning), 'imagenet', 'none', or a path to ResNet50 no-top weights")
    p.add_argument("--masks", choices=("lungs", "lesions", "annotations"),
                   help="GFSR relevance masks: the benchmark's true lung fields (default), its "
                   "lesions, or concept masks propagated from a few annotations (SLIC -> ResNet50 "
                   "segment embeddings -> k-means; needed for real data)")
    p.add_argument("--annotations", help="with --masks annotations: a folder of annotation "
                   "images (any non-zero pixel = marked, matched to training images by file "
                   "stem) or a JSON {image stem: [SLIC segment ids]}; default on the benchmark: "
                   "simulated scribbles on 5 images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        config = preset("smoke" if args.smoke else args.preset)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    if args.smoke and args.preset not in ("benchmark", "smoke"):
        sys.exit("error: --smoke and --preset cannot be combined")
    overrides = [(args.name, config, "name"), (args.data_dir, config, "data_dir"),
                 (args.epochs, config.train, "epochs"), (args.batch_size, config.train, "batch_size"),
                 (args.learning_rate, config.train, "learning_rate"),
                 (args.image_size, config.benchmark, "image_size"),
                 (args.lam, config.relevance, "weight"), (args.layer, config.model, "target_layer"),
                 (args.seed, config.train, "seed"), (args.seed, config.benchmark, "seed"),
                 (args.masks, config.relevance, "mask_source"),
                 (args.annotations, config, "annotations")]
    for value, section, key in overrides:
        if value is not None:
            setattr(section, key, value)
    if args.weights is not None:
        config.model.weights = None if args.weights.lower() == "none" else args.weights
    if args.annotations and config.relevance.mask_source != "annotations":
        sys.exit("error: --annotations needs --masks annotations")
    try:
        report = run_study(config, args.out, verbose=0 if args.quiet else 1)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    summary = Path(args.out) / config.name / "summary.md"
    print(summary.read_text())
    print(f"report: {summary.parent / 'report.json'}")
    return report


if __name__ == "__main__":
    main()
