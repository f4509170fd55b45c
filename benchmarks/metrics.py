"""Evaluation speed: localization metrics over many saliency maps and the bootstrap CIs, timed.

    python benchmarks/metrics.py --maps 10000 --size 128
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", type=int, default=10000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--test-set", type=int, default=624, help="images in the bootstrap test set")
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    from gfsr_tf.metrics import (auitc, classification_metrics, hit_rate, iou_top_k, miou,
                                    paired_bootstrap)
    rng = np.random.default_rng(0)
    maps = rng.random((args.maps, args.size // 8, args.size // 8), np.float32)  # a conv3 grid
    masks = np.zeros((args.maps, args.size, args.size), bool)
    masks[:, args.size // 4: args.size // 2, args.size // 4: args.size // 2] = True
    result = {"maps": args.maps, "mask_size": args.size, "map_grid": args.size // 8}
    for name, fn in (("hit_rate", lambda: hit_rate(maps, masks)),
                     ("miou_otsu", lambda: miou(maps, masks)),
                     ("iou_top5", lambda: iou_top_k(maps, masks, 5)),
                     ("auitc", lambda: auitc(maps, masks))):
        t0 = time.perf_counter()
        fn()
        result[f"{name}_seconds"] = time.perf_counter() - t0
    labels = rng.integers(0, 2, args.test_set)
    a, b = rng.random(args.test_set), rng.random(args.test_set)
    t0 = time.perf_counter()
    classification_metrics(labels, a, n_resamples=1000)
    result["bootstrap_all_metrics_1000_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    paired_bootstrap(labels, a, b, "auc", n_resamples=1000)
    result["paired_bootstrap_auc_1000_seconds"] = time.perf_counter() - t0
    for k, v in result.items():
        print(f"{k:36s} {v:.3f}" if isinstance(v, float) else f"{k:36s} {v}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
