"""Does the true-class explanation sit on the region the template annotations mark - the lung
fields, the fundus disc, the lesion - on every test image? Pointing game and energy share
inside the region drawn by the same rule on the test images. Real data only (the benchmark has
its ground truth: `localization`)."""
from __future__ import annotations

import numpy as np

from ..metrics import energy_inside, hit_rate, mean_ci
from ..guidance.templates import template_mask


def evaluate(ctx) -> dict:
    template = ctx.study.annotation_template
    data = ctx.splits[ctx.eval_split]
    if not template or data.lungs is not None:
        return {}
    regions = np.stack([template_mask(template, im if im.shape[-1] == 3 else im[..., 0])
                        for im in data.images])
    heat = ctx.heatmaps(ctx.eval_split)
    hits, energy = hit_rate(heat, regions), energy_inside(heat, regions)
    return {"focus": {"region": template, "layer": ctx.layer, "n": hits["n"],
                      "hit_rate": hits["hit_rate"], "hit_rate_ci": mean_ci(hits["hits"]),
                      "energy_inside": energy["energy_inside"],
                      "energy_inside_ci": mean_ci(energy["per_image"]),
                      "region_fraction": float(regions.mean())}}
