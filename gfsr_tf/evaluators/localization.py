"""Where does the evidence sit? The true-class explanation against the lesion masks (pointing
game, Otsu mIoU, IoU@top-5 %, AUITC), the lung fields and the marker box, at the model's layer
and at the ResNet stages beside it (rows trained at different layers compare at one layer)."""
from __future__ import annotations

import numpy as np

from ..metrics import auitc, box_masks, hit_rate, iou_top_k, mean_ci, miou

REFERENCE_LAYERS = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out")


def evaluate(ctx) -> dict:
    data = ctx.splits[ctx.eval_split]
    if data.lesions is None:
        return {}
    has = np.flatnonzero(data.lesions.reshape(len(data), -1).any(1))
    if len(has) == 0:
        return {"localization": {}}
    lesions = data.lesions[has]
    marked = data.has_marker[has] if data.has_marker is not None else None
    by_layer = {}
    # a method whose conv layers do not see whole images (a patch model) has only its own map
    compared = REFERENCE_LAYERS if getattr(ctx.method, "compares_layers", True) else ()
    for name in dict.fromkeys([ctx.layer, *compared]):
        if not ctx.has_layer(name):
            continue
        heat = ctx.heatmaps(ctx.eval_split, name)[has]
        hits = hit_rate(heat, lesions)
        entry = {"lesion_hit_rate": hits["hit_rate"], "lesion_hit_rate_ci": mean_ci(hits["hits"]),
                 "lesion_miou_otsu": miou(heat, lesions)["miou"],
                 "lesion_iou_top5": iou_top_k(heat, lesions, 5)["iou"],
                 "lesion_auitc": auitc(heat, lesions)["auitc"], "n": int(len(has))}
        if data.lungs is not None:
            entry["lung_hit_rate"] = hit_rate(heat, data.lungs[has] > 0)["hit_rate"]
        if marked is not None and marked.any():
            boxes = box_masks(data.marker_boxes[has][marked], heat.shape[1:])
            entry["marker_hit_rate_among_marked"] = hit_rate(heat[marked], boxes)["hit_rate"]
        by_layer[name] = entry
    return {"localization": {**by_layer[ctx.layer], "layer": ctx.layer, "by_layer": by_layer}}
