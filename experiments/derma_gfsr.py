"""Dermatology: baseline vs GFSR on DermaMNIST-C (corrected DermaMNIST npz, 7 classes;
--data-dir dermamnist_c_224.npz) or HAM10000 with lesion masks (--data-dir HAM10000/; add
--masks lesions to train on the true lesion masks) at 224 px, SLIC compactness 25, relevance
masks propagated from lesion annotations (templates unless --annotations is given), and the
peripheral-replacement robustness test (border replaced by --reference-image, else the
training images' median border colour). Report under runs/derma_gfsr/; reruns resume.

The same as `gfsr train --preset derma`.
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
    return run_experiment("derma", __doc__, argv)


if __name__ == "__main__":
    main()
