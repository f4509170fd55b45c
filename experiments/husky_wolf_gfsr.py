"""Husky vs Wolf (LIME's snow-background experiment): baseline vs GFSR on class folders
(--data-dir with husky/ and wolf/, or {train,test}/{husky,wolf}/) at 224 px, SLIC compactness
10, relevance masks propagated from annotated useful segments (--annotations: a JSON
{image stem: [SLIC segment ids]} or a folder of masks), periphery-replacement robustness test.
Report under runs/husky_wolf_gfsr/; reruns resume.

The same as `gfsr train --preset husky_wolf`.
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
    return run_experiment("husky_wolf", __doc__, argv)


if __name__ == "__main__":
    main()
