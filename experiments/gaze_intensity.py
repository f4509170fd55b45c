"""Prompt-controlled gaze-intensity heatmaps and a classifier that sees only the gazed pixels
(Pham et al.), on the embedded gaze simulation (default) or EGD-CXR (--data-dir).

Every row is resumable: a finished one is read back from
runs/gaze_intensity/<row>@seed<k>/result.json. Writes runs/gaze_intensity/results.{json,md}
(Tables 3-8 beside the paper's numbers), report.json (controllability) and panels.png.

    python experiments/gaze_intensity.py                     # every row, seed 0
    python experiments/gaze_intensity.py --rows ours,clf-pred,clf-gt
    python experiments/gaze_intensity.py --data-dir /data/egd-cxr
    python experiments/gaze_intensity.py --smoke             # tiny, for tests
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report

from gfsr_tf.cli.common import (add_distribute_arguments, select_rows,  # noqa: E402
                                start_distribution)
from gfsr_tf.config import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", help="comma-separated rows (default: all): ours, ours-C, "
                        "ours-L, ours-R, l2-only, ce-dice, no-alpha, clf-pred, clf-gt, "
                        "clf-full, unet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="EGD-CXR folder (master_sheet.csv, fixations.csv, "
                        "DICOMs, transcripts and masks); default: the embedded simulation")
    parser.add_argument("--masking", choices=("gated", "soft"), default="gated",
                        help="x*a*[a>0.5] (gated, default) or x*a (soft, the paper's literal)")
    parser.add_argument("--out", default="runs", help="output root (default: runs)")
    parser.add_argument("--name", help="study folder (default: gaze_intensity[_smoke])")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests (under a minute per row)")
    add_distribute_arguments(parser)
    args = parser.parse_args(argv)
    try:
        from gfsr_tf.methods.gaze_intensity.preset import ROWS, get_config
        rows = select_rows(ROWS, args.rows)
        if args.data_dir and not Path(args.data_dir).is_dir():
            raise FileNotFoundError(f"data directory not found: {args.data_dir}")
        config = get_config(args.smoke, args.seed, args.data_dir)
        config.masking = args.masking
        if args.name:
            config.name = args.name
        train = TrainConfig()
        where = start_distribution(args, train)
        config.distribute = {k: getattr(train, k)
                             for k in ("distribute", "cpu_replicas", "sync_batchnorm")}
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from gfsr_tf.methods.gaze_intensity.study import run_gaze_intensity
    from gfsr_tf.training.distribute import finish_worker
    out = run_gaze_intensity(config, rows, where)
    print(out["markdown"])
    print(f"\nwritten: {Path(where) / config.name}/results.md, report.json, panels.png")
    finish_worker(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
