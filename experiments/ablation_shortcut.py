"""Does guided focus remove the shortcut? An ablation on the embedded benchmark.

Every row trains one model on the same data with the same seed and initial weights; every row
sits beside the baseline trained in the same setting (image size, epochs, learning rate).
Rows are resumable: a finished row is read back from runs/ablation/<row>/result.json, an
interrupted one resumes from its last checkpoint. Writes runs/ablation/results.{json,md,png}.

    python experiments/ablation_shortcut.py               # the full study (hours on 2 cores)
    python experiments/ablation_shortcut.py --rows paper,baseline
    python experiments/ablation_shortcut.py --smoke       # tiny, for tests
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
from gfsr_tf.methods.gfsr.preset import ROWS, run_ablation  # noqa: E402
from gfsr_tf.training.distribute import finish_worker  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", help="comma-separated row names (default: all); known: "
                        + ", ".join(ROWS))
    parser.add_argument("--out", default="runs", help="output root (default: runs)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (about a minute per row)")
    parser.add_argument("--name", default=None, help="study folder name (default: ablation)")
    add_distribute_arguments(parser)
    args = parser.parse_args(argv)
    train = TrainConfig()
    try:
        rows = select_rows(ROWS, args.rows)
        out = start_distribution(args, train)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    table = run_ablation(rows, out_dir=out, smoke=args.smoke,
                         name=args.name or ("ablation_smoke" if args.smoke else "ablation"),
                         distribute={k: getattr(train, k) for k in ("distribute", "cpu_replicas",
                                                                    "sync_batchnorm")})
    print(table["markdown"])
    finish_worker(out)


if __name__ == "__main__":
    main()
