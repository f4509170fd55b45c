"""Robustness of a classifier's decisions under shortcut-removing perturbations."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def crop_corner(images: np.ndarray, fraction: float) -> np.ndarray:
    """Drop the top and left `fraction` of the image (where the benchmark's "R" marker sits) and
    resize the rest back to the original size (aspect ratio kept)."""
    n, h, w, c = images.shape
    y0, x0 = int(round(h * fraction)), int(round(w * fraction))
    kept = tf.image.resize(tf.cast(images[:, y0:, x0:], tf.float32), (h, w), antialias=True)
    return np.clip(np.round(kept.numpy()), 0, 255).astype(images.dtype)


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
