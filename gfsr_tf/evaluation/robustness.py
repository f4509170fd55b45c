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
