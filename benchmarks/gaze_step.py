"""Gaze U-Net train-step cost: the plain U-Net vs Watanabe et al.'s model sets (the generator map
M in the loss; sets 1 and 3 differentiate through M - a double backward), side by side in one
process on the same batch (ratios are what count on a noisy machine). The traced first call and
the warm-up steps are excluded.

    python benchmarks/gaze_step.py --size 64 --batch 32
    python benchmarks/gaze_step.py --size 224 --batch 4 --rows unet,set3-gbp
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from gfsr_tf.config import BenchmarkConfig, TrainConfig  # noqa: E402
from gfsr_tf.datasets.gaze_sim import make_gaze_split  # noqa: E402
from gfsr_tf.methods import get_method  # noqa: E402
from gfsr_tf.presets.gaze_unet import ROWS, get_config  # noqa: E402
from gfsr_tf.training import Trainer  # noqa: E402
from train_step import time_step  # noqa: E402  (benchmarks/train_step.py)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rows", default="unet,set1-gbp,set2-gbp,set3-gbp,set3-deconvnet")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    data = make_gaze_split(BenchmarkConfig(image_size=args.size, seed=0), "train", args.batch)
    batch = {"image": tf.constant(data.images), "label": tf.constant(data.labels, tf.int32),
             "mask": tf.constant(data.gaze)}
    method = get_method("gaze_unet")
    rows = {}
    for row in [r.strip() for r in args.rows.split(",")]:
        if row not in ROWS:
            raise SystemExit(f"error: unknown row {row!r}; choose from {', '.join(ROWS)}")
        study = get_config(False, row)
        study.model.weights = None
        options = method.make_config(study.variants[0].options)
        model = method.build_model(study, options, 3, (args.size, args.size, 3), [])
        trainer = Trainer(model, f"/tmp/gaze_bench_{row}", method.step_factory(options, study),
                          train=TrainConfig(batch_size=args.batch), verbose=0)
        rows[row] = time_step(trainer.train_step, batch, args.batch, args.warmup, args.steps,
                              row)
    if "unet" in rows:
        for row, v in rows.items():
            v["vs_unet_step_ratio"] = v["step_s"] / rows["unet"]["step_s"]
            print(f"{row}: {v['vs_unet_step_ratio']:.2f} x unet")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gaze_step_{args.size}px_b{args.batch}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(f"written: {path}")
    return rows


if __name__ == "__main__":
    main()
