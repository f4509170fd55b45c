"""Decisions under perturbation: flip and agreement rates, flip confusion and the change of the
decided class's probability, on the split where the benchmark's marker carries no label
information. Perturbations are a name -> function table; the benchmark's exact marker-free
twins are always added where they exist."""
from __future__ import annotations

import numpy as np

from ..datasets.base import ImageSet
from ..metrics import (crop_corner, decision_change, mean_ci, replace_periphery,
                          selective_blur)
from .context import decide

# The benchmark's marker sits within the top-left ~23% of the image; the crop removes that band.
MARKER_CROP_FRACTION = 0.25


def median_border_colour(images: np.ndarray, width: float = 0.05) -> np.ndarray:
    """A flat reference background: the median colour of the images' outer `width` band (skin
    around a dermoscopy lesion, the dark surround of a fundus)."""
    h, w = images.shape[1:3]
    b = max(1, int(round(width * min(h, w))))
    band = np.concatenate([images[:, :b].reshape(-1, images.shape[-1]),
                           images[:, -b:].reshape(-1, images.shape[-1]),
                           images[:, :, :b].reshape(-1, images.shape[-1]),
                           images[:, :, -b:].reshape(-1, images.shape[-1])])
    return np.broadcast_to(np.median(band, 0).astype(np.uint8), (h, w, images.shape[-1]))


def _marker_cropped(data: ImageSet, train, study):
    return crop_corner(data.images, MARKER_CROP_FRACTION)


def _selective_blur(data: ImageSet, train, study):
    """The paper's selective blur (radius 60 px, sigma 1.5, for 128-px fundus images), scaled so
    it keeps the same fraction of the image at any size."""
    size = data.images.shape[1]
    return selective_blur(data.images, radius=60 * size / 128, sigma=1.5 * size / 128)


def _periphery_replaced(data: ImageSet, train, study):
    if study.reference_image:
        from ..datasets.images import read_image
        reference = read_image(study.reference_image, data.images.shape[-1])
    else:
        reference = median_border_colour((train or data).images)
    return replace_periphery(data.images, reference)


PERTURBATIONS = {"marker_cropped": _marker_cropped, "selective_blur": _selective_blur,
                 "periphery_replaced": _periphery_replaced}


def perturbations(study, data: ImageSet, train: ImageSet | None = None) -> dict:
    """{name: perturbed test images} for study.robustness, plus the benchmark's twins."""
    out = {}
    for name in study.robustness:
        if name not in PERTURBATIONS:
            raise ValueError(f"unknown robustness test {name!r}; choose from "
                             f"{', '.join(PERTURBATIONS)}")
        out[name] = PERTURBATIONS[name](data, train, study)
    if data.twins is not None:
        out["marker_removed"] = data.twins
    return out


def evaluate(ctx) -> dict:
    name = ctx.eval_split
    data = ctx.splits[name]
    p = ctx.predict(data.images, name)
    before = decide(p)
    # the probability of each image's original decision, before and after
    chosen = (lambda q: q) if p.ndim == 1 else (lambda q: q[np.arange(len(q)), before])
    out = {}
    for key, images in perturbations(ctx.study, data, ctx.splits.get("train")).items():
        q = ctx.predict(images, f"{name}/{key}")  # cached: the audit reads the twins too
        after = decide(q)
        result = decision_change(before, after, chosen(p), chosen(q), data.num_classes)
        result["flip_rate_ci"] = mean_ci(before != after)
        if data.has_marker is not None and data.has_marker.any():
            marked = data.has_marker
            result["among_marked"] = decision_change(before[marked], after[marked],
                                                     chosen(p)[marked], chosen(q)[marked],
                                                     data.num_classes)
        out[key] = result
    return {"robustness": out}
