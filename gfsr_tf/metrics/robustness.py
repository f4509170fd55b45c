"""Robustness of a classifier's decisions under shortcut-removing perturbations."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def crop_corner(images: np.ndarray, fraction: float, restore: str = "pad") -> np.ndarray:
    """Crop away the top and left `fraction` bands (where the benchmark's "R" marker sits) and
    restore the original size.

    restore="pad": the removed bands are refilled with the image's background level (median of
    its border pixels), so anatomy keeps its scale and position - on the benchmark a model that
    ignores the corner is unaffected (measured: a shortcut-free model flips 46% of its decisions
    under "resize" because a from-scratch ResNet is not scale-invariant, which would drown the
    marker's effect). restore="resize": the kept part is resized back (zoom, aspect kept).
    """
    n, h, w, c = images.shape
    y0, x0 = int(round(h * fraction)), int(round(w * fraction))
    if restore == "resize":
        kept = tf.image.resize(tf.cast(images[:, y0:, x0:], tf.float32), (h, w), antialias=True)
        return np.clip(np.round(kept.numpy()), 0, 255).astype(images.dtype)
    if restore != "pad":
        raise ValueError(f"restore must be 'pad' or 'resize', got {restore!r}")
    out = images.copy()
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
    fill = np.median(border, axis=1).astype(images.dtype)          # (N, C)
    out[:, :y0] = fill[:, None, None]
    out[:, :, :x0] = fill[:, None, None]
    return out


def decision_change(pred_before, pred_after, prob_before=None, prob_after=None,
                    num_classes: int = 2) -> dict:
    """Agreement/flip rate and the flip confusion matrix (from-class x to-class counts)."""
    a, b = np.asarray(pred_before).astype(int), np.asarray(pred_after).astype(int)
    if a.shape != b.shape:
        raise ValueError(f"prediction arrays differ in shape: {a.shape} vs {b.shape}")
    flips = np.zeros((num_classes, num_classes), int)
    np.add.at(flips, (a, b), 1)
    agreement = float(np.mean(a == b)) if len(a) else float("nan")
    out = {"agreement_rate": agreement, "flip_rate": 1.0 - agreement,
           "flip_confusion": flips.tolist(), "n": int(len(a))}
    if prob_before is not None and prob_after is not None:
        out["mean_probability_change"] = float(np.mean(np.asarray(prob_after) -
                                                       np.asarray(prob_before)))
    return out


# --- composable perturbations: (N, H, W, C) uint8 -> same shape and dtype ----------------------

def occlude(images: np.ndarray, boxes, fill="median") -> np.ndarray:
    """Fill rectangles (y0, x0, y1, x1) - one box for all images or one per image - with `fill`:
    "median" (each image's median level per channel, i.e. its background) or a number.
    The rectangular counterfactual of a marker or overlay."""
    images = np.asarray(images)
    boxes = np.broadcast_to(np.asarray(boxes, int), (len(images), 4))
    out = images.copy()
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        value = np.median(images[i].reshape(-1, images.shape[-1]), 0) if fill == "median" else fill
        out[i, y0:y1, x0:x1] = np.asarray(value).astype(images.dtype)
    return out


def fundus_centre(image: np.ndarray) -> tuple[float, float]:
    """Centre (y, x) of a fundus photograph: the centroid of the pixels brighter than the
    image's Otsu threshold (the illuminated disc against the dark surround)."""
    from skimage.filters import threshold_otsu
    gray = image.astype(np.float32).mean(-1) if image.ndim == 3 else image.astype(np.float32)
    if gray.max() == gray.min():
        return (gray.shape[0] - 1) / 2, (gray.shape[1] - 1) / 2
    ys, xs = np.nonzero(gray > threshold_otsu(gray))
    return float(ys.mean()), float(xs.mean())


def _outside_weight(shape, centre, radius: float, feather: float) -> np.ndarray:
    """0 inside the circle, 1 beyond radius + feather, a linear ramp in between."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    d = np.hypot(yy - centre[0], xx - centre[1])
    return np.clip((d - radius) / max(feather, 1e-6), 0.0, 1.0)[..., None]


def selective_blur(images: np.ndarray, radius: float = 60, sigma: float = 1.5,
                   feather: float = 2, centres=None) -> np.ndarray:
    """The retina test (paper 4.3.2): Gaussian blur (sigma px) outside a circle of `radius` px
    around the fundus centre (found per image by `fundus_centre` unless given), blended in over
    a `feather`-px ramp. The paper's values are for its input size; scale them with it."""
    import cv2
    images = np.asarray(images)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        centre = fundus_centre(image) if centres is None else centres[i]
        w = _outside_weight(image.shape[:2], centre, radius, feather)
        blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma).reshape(image.shape)
        mixed = (1 - w) * image.astype(np.float32) + w * blurred
        out[i] = np.clip(np.round(mixed), 0, 255).astype(images.dtype)
    return out


def replace_periphery(images: np.ndarray, reference: np.ndarray, keep: float = 0.7,
                      feather: float = 2) -> np.ndarray:
    """The dermatology test: everything outside a central circle of diameter keep x the shorter
    side is replaced by a reference background image (resized to the image size), blended over a
    `feather`-px ramp - removes rulers, ink and vignettes at the border, keeps the lesion."""
    import cv2
    images = np.asarray(images)
    n, h, w, c = images.shape
    ref = cv2.resize(np.asarray(reference), (w, h), interpolation=cv2.INTER_AREA)
    ref = ref.reshape(h, w, -1)
    if ref.shape[-1] != c:
        ref = np.repeat(ref.mean(-1, keepdims=True), c, -1) if c == 1 else np.repeat(ref, c, -1)
    weight = _outside_weight((h, w), ((h - 1) / 2, (w - 1) / 2), keep * min(h, w) / 2, feather)
    mixed = (1 - weight) * images.astype(np.float32) + weight * ref.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(images.dtype)
