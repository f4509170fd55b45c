"""Deletion and insertion (Petsiuk et al. 2018, RISE): does the model's score follow the map?

Pixels are ranked by the map (most relevant first, ties broken by position) and, in `steps`
equal chunks, deleted from the image (replaced by a baseline) or inserted into the baseline.
The class probability after each chunk gives a curve over the fraction of pixels changed; its
area (trapezoidal rule over [0, 1]) is the score. A faithful map makes the deletion curve fall
fast (low AUC) and the insertion curve rise fast (high AUC). Written here rather than taken from
Quantus because the definition is a few lines of numpy over any `predict` callable (our
preprocessing and heads stay outside), and Quantus's pixel-flipping API expects channel-first
arrays and framework wrappers.
"""
from __future__ import annotations

import numpy as np

from .localization import _to_size


def blurred_baseline(images: np.ndarray) -> np.ndarray:
    """The images Gaussian-blurred with sigma = size / 16: the "removed" pixels' values (a blur
    keeps the intensity statistics, so deletion does not test the model on black holes)."""
    import cv2
    sigma = images.shape[1] / 16
    out = np.stack([cv2.GaussianBlur(im.astype(np.float32), (0, 0), sigma) for im in images])
    return out.reshape(images.shape)


def perturbation_curves(predict, images: np.ndarray, maps: np.ndarray, class_index,
                        baseline: np.ndarray, steps: int = 16) -> dict:
    """predict: images (N, H, W, C) -> class probabilities (N, K); images and baseline in the
    same pixel space; maps (N, h, w) are resized to the images. Returns {"fractions" (steps+1,),
    "deletion" (N, steps+1), "insertion" (N, steps+1)} of the probability of `class_index`."""
    images = np.asarray(images, np.float32)
    baseline = np.broadcast_to(np.asarray(baseline, np.float32), images.shape)
    n, h, w = images.shape[:3]
    if np.ndim(maps) != 3 or len(maps) != n:
        raise ValueError(f"maps must be (N, h, w) with N = {n}, got {np.shape(maps)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not np.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf")
    maps = _to_size(np.asarray(maps, np.float32), (h, w)).reshape(n, -1)
    order = np.argsort(-maps, axis=1, kind="stable")            # most relevant first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None].repeat(n, 0), axis=1)
    cls = np.broadcast_to(np.asarray(class_index, int), (n,))
    bounds = np.linspace(0, h * w, steps + 1).round().astype(int)
    curves = {"deletion": np.empty((n, steps + 1)), "insertion": np.empty((n, steps + 1))}
    for k, bound in enumerate(bounds):
        changed = (rank < bound).reshape(n, h, w, 1)          # the top-`bound` pixels
        for name, start, end in (("deletion", images, baseline),
                                 ("insertion", baseline, images)):
            probs = np.asarray(predict(np.where(changed, end, start)))
            curves[name][:, k] = probs[np.arange(n), cls]
    return {"fractions": bounds / (h * w), **curves}


def deletion_insertion(predict, images, maps, class_index, baseline, steps: int = 16) -> dict:
    """Per-image deletion and insertion AUCs (see the module docstring) and their means."""
    curves = perturbation_curves(predict, images, maps, class_index, baseline, steps)
    x = curves["fractions"]
    auc = {k: np.trapezoid(curves[k], x, axis=1) for k in ("deletion", "insertion")}
    return {"deletion_auc": float(auc["deletion"].mean()),
            "insertion_auc": float(auc["insertion"].mean()),
            "per_image": auc, "curves": curves}
