"""Retina: baseline vs GFSR on RetinaMNIST (MedMNIST v2 npz, grades 0-4; --data-dir
retinamnist.npz or retinamnist_128.npz) at 128 px, the paper's retina setting: SLIC compactness
10, relevance masks propagated from fundus-disc annotations (template annotations unless
--annotations gives a clinician's), selective-blur robustness test (blur outside the fundus
centre, paper 4.3.2). Writes the main job's report under runs/retina_gfsr/; reruns resume.

The same as `gfsr train --preset retina`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gfsr_tf.cli.train import run_experiment  # noqa: E402


def main(argv=None) -> dict:
    return run_experiment("retina", __doc__, argv)


if __name__ == "__main__":
    main()
