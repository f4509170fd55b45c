"""Gaze-intensity losses (Pham et al.): L_h = l2 * L_2 + ce * L_ce + dice * L_dice (paper: 1, 1, 1)
on the predicted logit map a_hat (B, H, W) against the ground-truth intensity a in [0, 1] and its
foreground m (0/1, the gaze foundation's binarisation of a, computed with the data):

  L_2    mean (a_hat - logit(clip(a, 0.01, 0.99)))^2   (the released code's epsilon; a mean
         square, as the mL2 metric)
  L_ce   mean pixel BCE(a_hat, m)
  L_dice 1 - (2 sum sigmoid(a_hat) m + 1) / (sum sigmoid(a_hat) + sum m + 1), per sample
         (`losses.segmentation.soft_dice_loss`)

The prediction is never binarised inside the loss (no gradient would flow); each term is (B,).
"""
from __future__ import annotations

import tensorflow as tf

from ...losses.segmentation import flat_maps, soft_dice_loss

CLIP = 0.01


def logit_l2_loss(logits, intensity) -> tf.Tensor:
    """(B,) mean squared difference between the logit map and logit(clip(a, 0.01, 0.99))."""
    a = tf.clip_by_value(flat_maps(intensity), CLIP, 1.0 - CLIP)
    target = tf.math.log(a) - tf.math.log1p(-a)
    return tf.reduce_mean(tf.square(flat_maps(logits) - target), 1)


def foreground_bce(logits, foreground) -> tf.Tensor:
    """(B,) mean pixel BCE of the logit map against the 0/1 foreground."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(flat_maps(foreground),
                                                                  flat_maps(logits)), 1)


def intensity_loss(logits, intensity, foreground, weights=(1.0, 1.0, 1.0)) -> dict:
    """{"loss", "l2", "ce", "dice"}: each (B,); loss = the weighted sum (l2, ce, dice)."""
    l2 = logit_l2_loss(logits, intensity)
    ce = foreground_bce(logits, foreground)
    dice = soft_dice_loss(tf.sigmoid(flat_maps(logits)), flat_maps(foreground))
    w2, wce, wdice = weights
    return {"loss": w2 * l2 + wce * ce + wdice * dice, "l2": l2, "ce": ce, "dice": dice}
