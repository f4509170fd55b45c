"""Why Grad-CAM guidance can be satisfied without dropping the marker: the mechanisms of the
shortcut study, measured on Keras' ResNet50 at the benchmark's size (random initialisation, as
the main job trains). Prints a table and writes JSON.

  1. BatchNorm batch-sum identity: in training mode the Grad-CAM channel weights (spatial-mean
     gradients of the batch-summed score) sum to ~0 over the batch per channel; in inference
     mode they do not. Reported: max |sum over the batch| / max |weight|, both modes.
  2. Dead cells: the share of a stage output's cells whose gradient is exactly 0.
  3. Receptive fields: the input extent that moves one central cell (non-zero input gradient,
     clipped by the image), and the share of lung cells whose receptive field reaches the marker
     box (measured cell by cell, on the first image).

    python benchmarks/cam_diagnosis.py --size 64 --batch 8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gfsr_tf.config import BenchmarkConfig  # noqa: E402
from gfsr_tf.datasets.synthetic import make_split  # noqa: E402
from gfsr_tf.losses import mask_to_grid  # noqa: E402
from gfsr_tf.models import CamModel, build_classifier  # noqa: E402
from gfsr_tf.preprocessing import preprocess  # noqa: E402
from gfsr_tf.saliency.gradcam import score_gradients  # noqa: E402

LAYERS = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out")


def receptive_mask(model, layer: str, x: np.ndarray, cell) -> np.ndarray:
    """(H, W) bool: input pixels whose change moves activation `cell` (summed over channels)."""
    sub = tf.keras.Model(model.inputs, model.get_layer(layer).output)
    xt = tf.constant(x[:1])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = sub(xt, training=False)
        value = tf.reduce_sum(out[0, cell[0], cell[1]])
    g = tape.gradient(value, xt).numpy()[0]
    return np.abs(g).sum(-1) > 0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/cam_diagnosis.json")
    args = parser.parse_args(argv)
    data = make_split(BenchmarkConfig(image_size=args.size), "train", args.batch)
    model = build_classifier(2, (args.size, args.size, 3), None, seed=0, bn_momentum=0.9)
    x = preprocess(data.images).numpy()
    labels = tf.constant(data.labels.astype(np.int32))
    y0, x0, y1, x1 = data.marker_boxes[0]
    out: dict = {"size": args.size, "batch": args.batch, "layers": {}}
    for layer in LAYERS:
        cam = CamModel(model, layer)
        row = {}
        for mode in ("training", "inference"):
            g = score_gradients(cam, x, labels, training=mode == "training")[2].numpy()
            w = g.mean(axis=(1, 2))                                   # (N, C) channel weights
            row[f"batch_sum_ratio_{mode}"] = float(np.abs(w.sum(0)).max() / np.abs(w).max())
            row["dead_cell_share"] = float(np.mean(np.all(g == 0, axis=(0, 3))))
        h = g.shape[1]
        centre = receptive_mask(model, layer, x, (h // 2, h // 2))
        ys, xs = np.nonzero(centre)
        row["receptive_field_px"] = int(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)
        # lung cells (grid cells mostly inside the lungs) whose receptive field - measured per
        # cell as the input pixels with a non-zero gradient - reaches the marker box
        lungs = mask_to_grid(tf.constant(data.lungs[:1]), (h, h)).numpy()[0] > 0.5
        reach = [receptive_mask(model, layer, x, (i, j))[y0:y1, x0:x1].any()
                 for i, j in zip(*np.nonzero(lungs))]
        row["lung_cells"] = int(lungs.sum())
        row["lung_cells_seeing_marker"] = float(np.mean(reach)) if reach else float("nan")
        out["layers"][layer] = row
    print(f"ResNet50, {args.size} px, batch {args.batch}, random init")
    print("| layer | weights' batch sum / max weight, training | same, inference | dead cells | "
          "receptive field px | lung cells | lung cells whose field reaches the marker |")
    print("|---|---|---|---|---|---|---|")
    for layer, r in out["layers"].items():
        print(f"| {layer} | {r['batch_sum_ratio_training']:.1e} | "
              f"{r['batch_sum_ratio_inference']:.2f} | {r['dead_cell_share']:.2f} | "
              f"{r['receptive_field_px']} | {r['lung_cells']} | "
              f"{r['lung_cells_seeing_marker']:.2f} |")
    Path(args.out).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
