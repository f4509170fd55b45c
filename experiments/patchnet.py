"""MedicalPatchNet (Wienholt et al. 2026): the mean-of-patch-logits classifier (P = 4) against
the same network on the whole image (P = 1, the paper's baseline), same data, seed and budget,
on the embedded shortcut benchmark at 128 px (default) or on real data (--data-dir: HAM10000
with lesion masks; PneumoniaMNIST / Kermany for classification only).

Writes runs/patchnet/: report.json, summary.md, report.html and figures - classification at
validation Youden thresholds with bootstrap CIs and the paired AUC difference; every map
(raw/scaled patch maps at o = p and p/4; Grad-CAM, Grad-CAM++ and Eigen-CAM of the P = 1 model)
against the lesion masks (hit rate, mIoU TP-only and TP/FP/FN), deletion/insertion AUCs, the
share pointing at the "R" marker, the exact patch-logit decomposition on every twin pair, and
patch_maps.png (Fig. 5-style rows). Rerun the same command to resume. The same as
`gfsr train --preset patchnet`.

    python experiments/patchnet.py
    python experiments/patchnet.py --data-dir /data/HAM10000 --image-size 128
    python experiments/patchnet.py --smoke
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
    return run_experiment("patchnet", __doc__, argv, gfsr_options=False)


if __name__ == "__main__":
    main()
