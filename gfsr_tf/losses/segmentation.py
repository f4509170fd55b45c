"""Segmentation losses (SegX's U-Net): lambda * BCE + (1 - lambda) * soft Dice, per image.

Soft Dice per image: 1 - (2 sum(p g) + 1) / (sum p + sum g + 1), p = sigmoid(logits), the +1
smoothing keeps an empty target and an empty prediction at loss 0. lambda = 0.5 by default
(SegX gives none; its public code trains with BCE alone, lambda = 1).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def flat_maps(t):
    t = tf.cast(t, tf.float32)
    return tf.reshape(t, (tf.shape(t)[0], -1))


def soft_dice_loss(probs, targets) -> tf.Tensor:
    """(N,) soft Dice loss of probabilities vs 0/1 targets, any (N, ...) shapes that match."""
    p, g = flat_maps(probs), flat_maps(targets)
    return 1.0 - (2.0 * tf.reduce_sum(p * g, 1) + 1.0) / (
        tf.reduce_sum(p, 1) + tf.reduce_sum(g, 1) + 1.0)


def bce_dice_loss(logits, targets, bce_weight: float = 0.5) -> tf.Tensor:
    """(N,) lambda * mean pixel BCE (from logits) + (1 - lambda) * soft Dice."""
    z, g = flat_maps(logits), flat_maps(targets)
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(g, z), 1)
    return bce_weight * bce + (1.0 - bce_weight) * soft_dice_loss(tf.sigmoid(z), g)


def dice_iou(pred: np.ndarray, target: np.ndarray) -> dict:
    """Mean Dice and IoU of binary predictions vs binary targets over images (N, H, W); an
    image with both empty scores 1 (nothing to find, nothing found)."""
    p = np.asarray(pred, bool).reshape(len(pred), -1)
    g = np.asarray(target, bool).reshape(len(target), -1)
    inter = (p & g).sum(1).astype(np.float64)
    total = p.sum(1) + g.sum(1)
    union = (p | g).sum(1)
    dice = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return {"dice": float(dice.mean()), "iou": float(iou.mean()), "n": int(len(p))}
