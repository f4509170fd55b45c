"""SegX and SegU (Zhang, Zhu, Luo 2025): masking explanations with a segmentation of the
clinically relevant region, and their agreement with it as a per-prediction certainty.

Trains the U-Net segmenter and ResNet50 / DenseNet121 multi-label classifiers (no guided focus),
explains every predicted-positive (image, class) pair of the evaluation split (the benchmark's
decorrelated test split, or `test`) with Grad-CAM and expected gradients (the latter on at most
--eg-images test images), and writes runs/segx/: report.json (`segx`: iou_top5 / auitc per
model x explainer x {original, segx}, c_iou, c_auitc, certainty_auroc), summary.md,
report.html and figures (Table 3 and Table 4 layouts, Fig. 3-style overlays, risk-coverage).
Rerun the same command to resume.

    python experiments/segx.py
    python experiments/segx.py --multilabel          # a second finding with its own mask
    python experiments/segx.py --data-dir /data/HAM10000 --image-size 128
    python experiments/segx.py --smoke
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gfsr_tf.cli import USER_ERRORS  # noqa: E402
from gfsr_tf.cli.common import add_study_arguments, start_distribution, study_config  # noqa: E402,E501
from gfsr_tf.training.distribute import finish_worker  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(p, "segx", gfsr_options=False)
    p.add_argument("--multilabel", action="store_true", help="benchmark with a second finding "
                   "(a basal opacity with its own mask; classes normal, pneumonia, "
                   "basal_opacity)")
    p.add_argument("--eg-images", type=int, default=100, help="expected gradients on at most "
                   "this many test images (default 100)")
    p.add_argument("--eg-samples", type=int, default=50, help="(background, t) draws per pair "
                   "(default 50)")
    args = p.parse_args(argv)
    try:
        from gfsr_tf.methods.segmenter.study import SegxSettings, run_segx
        config = study_config(args)
        out = start_distribution(args, config.train)
        if args.multilabel:
            if config.data_dir:
                raise ValueError("--multilabel is the benchmark's variant: drop it with "
                                 "--data-dir")
            config.benchmark.second_finding = True
            config.name += "_multilabel" if not args.name else ""
        settings = SegxSettings(region="lesions" if config.data_dir else "lungs",
                                eg_images=4 if args.smoke else args.eg_images,
                                eg_samples=4 if args.smoke else args.eg_samples,
                                n_resamples=100 if args.smoke else 1000,
                                seed=config.train.seed)
        report = run_segx(config, settings, out, verbose=0 if args.quiet else 1)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    summary = Path(out) / config.name / "summary.md"
    print(summary.read_text())
    print(f"report: {summary.parent / 'report.html'}")
    finish_worker(out)
    return report


if __name__ == "__main__":
    main()
