"""Pneumonia: baseline vs GFSR (guided focus) on the embedded shortcut benchmark (default), on
PneumoniaMNIST (--preset pneumoniamnist --data-dir pneumoniamnist.npz) or on the real Kermany
chest X-ray layout (--data-dir chest_xray/).

Trains both models with the same seed, split and initial weights, evaluates them (Table 1
metrics on correlated and decorrelated test splits, flip/agreement rate when the "R" marker is
removed or its corner cropped, Grad-CAM lesion hit rate) and writes runs/<name>/: report.json,
summary.md, report.html and figures. Rerun the same command to resume an interrupted run.
The same as `gfsr train`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report

from gfsr_tf.cli.train import run_experiment  # noqa: E402


def main(argv=None) -> dict:
    return run_experiment("benchmark", __doc__, argv)


if __name__ == "__main__":
    main()
