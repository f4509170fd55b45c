"""Where does the evidence sit? The true-class explanation against the lesion masks (pointing
game, Otsu mIoU, IoU@top-5 %, AUITC), the lung fields (on every image too: `anatomy`) and the
marker box, at the model's layer and at the ResNet stages beside it (rows trained at different
layers compare at one layer)."""
from __future__ import annotations

import numpy as np

from ..metrics import auitc, box_masks, energy_inside, hit_rate, iou_top_k, mean_ci, miou

REFERENCE_LAYERS = ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out")


def anatomy(heat: np.ndarray, lungs: np.ndarray) -> dict:
    """Is the map on the anatomy, over every image of the split (both classes; `lung_hit_rate`
    keeps its meaning: lesion images only)? Pointing game against the lung fields (a constant
    map is a miss), the map's energy inside them beside their area share, and the share of
    all-zero maps (Grad-CAM's ReLU removed every cell: no positive evidence at this layer)."""
    hits = hit_rate(heat, lungs)
    empty = heat.reshape(len(heat), -1).max(1) <= 0
    return {"lung_hit_rate_all": hits["hit_rate"], "lung_hit_rate_all_ci": mean_ci(hits["hits"]),
            "lung_cam_mass_all": energy_inside(heat, lungs)["energy_inside"],
            "lung_area_share": float(lungs.reshape(len(lungs), -1).mean()),
            "all_zero_maps": float(empty.mean()), "all_zero_maps_count": int(empty.sum()),
            "n_all": int(len(heat))}


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
            entry.update(anatomy(ctx.heatmaps(ctx.eval_split, name), data.lungs > 0))
        if marked is not None and marked.any():
            boxes = box_masks(data.marker_boxes[has][marked], heat.shape[1:])
            entry["marker_hit_rate_among_marked"] = hit_rate(heat[marked], boxes)["hit_rate"]
        by_layer[name] = entry
    return {"localization": {**by_layer[ctx.layer], "layer": ctx.layer, "by_layer": by_layer}}
