"""Extensions beyond the paper that act on the input or on the decision, not on Grad-CAM's shape
(the shortcut study, issue "Guidance that removes the shortcut"; docs/studies/shortcuts.md): Grad-CAM can be moved
without changing the decision (Heo et al. 2019), so these constrain what the logit depends on.

  replace_outside        x~ = m x + (1 - m) donor: everything outside the (dilated) relevance mask
                         taken from another image of the batch (a counterfactual background)
  consistency_penalty    (z(x) - z(x~))^2 per image: the decision must not move when only the
                         background changes (Rieger et al. 2020 and counterfactual-consistency
                         training in spirit)
  outside_attribution    the share of the signed gradient x activation map's absolute mass
                         (sum_c A_c dS/dA_c, per cell; no channel mean, no ReLU, so nothing can
                         hide in a cancelling channel or as negative evidence) lying outside the
                         mask
"""
from __future__ import annotations

import tensorflow as tf

from .relevance import outside_share


def dilate(mask: tf.Tensor, pixels: int) -> tf.Tensor:
    """(N, H, W) mask -> binary (mask > 0.5), grown by `pixels` in every direction (square)."""
    hard = tf.cast(tf.cast(mask, tf.float32) > 0.5, tf.float32)[..., None]
    if pixels > 0:
        hard = tf.nn.max_pool2d(hard, 2 * pixels + 1, 1, "SAME")
    return hard[..., 0]


def replace_outside(images: tf.Tensor, keep: tf.Tensor, donors: tf.Tensor) -> tf.Tensor:
    """images, donors (N, H, W, C); keep (N, H, W) in [0, 1] -> keep*images + (1-keep)*donors."""
    keep = tf.cast(keep, images.dtype)[..., None]
    return keep * images + (1.0 - keep) * tf.cast(donors, images.dtype)


def counterfactual_batch(images: tf.Tensor, masks: tf.Tensor, dilation: int,
                         replace: tf.Tensor | None = None) -> tf.Tensor:
    """Each image with its out-of-mask region taken from the next image of the batch (a rolled
    batch: batches are reshuffled every epoch, so donors vary and the run stays deterministic).
    `replace` (N,) bool: which images get a counterfactual background (default all)."""
    keep = dilate(masks, dilation)
    if replace is not None:
        keep = tf.where(tf.reshape(replace, (-1, 1, 1)), keep, tf.ones_like(keep))
    return replace_outside(images, keep, tf.roll(images, shift=1, axis=0))


def consistency_penalty(logits: tf.Tensor, counterfactual_logits: tf.Tensor) -> tf.Tensor:
    """Per-image mean squared logit change (N,): (z(x) - z(x~))^2 averaged over the outputs."""
    diff = tf.cast(logits, tf.float32) - tf.cast(counterfactual_logits, tf.float32)
    return tf.reduce_mean(tf.square(diff), axis=-1)


def outside_attribution(activations: tf.Tensor, gradients: tf.Tensor,
                        mask: tf.Tensor) -> tf.Tensor:
    """Per image (N,): sum((1 - m) |g.A|) / (sum |g.A| + eps), g.A = sum_c A_c dS/dA_c at the
    target layer (signed, per cell); m = the mask area-resized to the layer's grid. In [0, 1];
    an image whose map is all zero scores 0 (no NaN)."""
    return outside_share(tf.abs(tf.reduce_sum(activations * gradients, axis=-1)), mask)
