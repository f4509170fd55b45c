"""The GFSR relevance loss between a normalised Grad-CAM and a soft relevance mask.

L = alpha * MAE + (1 - alpha) * MSE + beta * Focal, with
Focal = mean(m * (1 - cam) ** gamma): it is zero where the mask says "irrelevant" and grows
where relevant regions (m high) are left cold by the CAM - the paper's "omissions in critical
regions are weighted more". Masks are area-resized to the CAM grid (the CAM is what the network
produces; upsampling it would invent detail the target layer does not have).
"""
from __future__ import annotations

import tensorflow as tf

from ..saliency.gradcam import gradcam_before_relu


def mask_to_grid(mask: tf.Tensor, grid) -> tf.Tensor:
    """(N, H, W) soft mask -> (N, h, w) by area averaging (keeps the mask's mean). For integer
    factors - the usual case, e.g. 64 px -> a stride-4 or stride-8 grid - this is average pooling,
    which XLA compiles (ResizeArea has no XLA kernel)."""
    mask = tf.cast(mask, tf.float32)[..., None]
    size, grid_static = mask.shape[1:3], tf.get_static_value(grid)
    if None not in size and grid_static is not None:
        (h, w), (gh, gw) = size, [int(g) for g in grid_static]
        if h % gh == 0 and w % gw == 0:
            factor = (h // gh, w // gw)
            return tf.nn.avg_pool2d(mask, factor, factor, "VALID")[..., 0]
    return tf.image.resize(mask, grid, method="area")[..., 0]


def relevance_loss(cam: tf.Tensor, mask: tf.Tensor, alpha: float = 0.5, beta: float = 1.0,
                   gamma: float = 2.0) -> tf.Tensor:
    """Per-image loss (N,) between cam (N, h, w) in [0, 1] and mask (N, H, W) in [0, 1]."""
    mask = tf.cast(mask_to_grid(mask, _grid(cam)), cam.dtype)
    diff = cam - mask
    mae = tf.reduce_mean(tf.abs(diff), axis=[1, 2])
    mse = tf.reduce_mean(tf.square(diff), axis=[1, 2])
    focal = tf.reduce_mean(mask * tf.pow(1.0 - cam, gamma), axis=[1, 2])
    return alpha * mae + (1.0 - alpha) * mse + beta * focal


def input_gradient_penalty(input_gradients: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Extension ("right for the right reasons", Ross et al. 2017), made scale-free: per image,
    the fraction of the class score's squared input-gradient energy that lies outside the mask,
    sum((1 - m) * g^2) / (sum(g^2) + eps), in [0, 1]. (The absolute form of Ross et al. varies
    by ~1e9 across a from-scratch ResNet50's training, so no single weight works for it.)"""
    g = tf.reduce_sum(tf.square(input_gradients), axis=-1)             # (N, H, W)
    outside = 1.0 - tf.cast(mask, g.dtype)
    total = tf.reduce_sum(g, axis=[1, 2])
    return tf.reduce_sum(outside * g, axis=[1, 2]) / (total + 1e-12)


def negative_evidence(activations: tf.Tensor, gradients: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Extension: per image, the Grad-CAM's negative evidence inside the mask before its ReLU,
    mean(m * relu(-z)) / max|z| with z = sum_c mean_hw(dS/dA_c) A_c on the (N, h, w) grid, in
    [0, 1]. GFSR's loss reads relu(z): where z < 0 everywhere (an all-zero map) it has no
    gradient and the map stays empty; this term pulls z up inside the mask. The scale max|z| is
    a constant of the gradient (stop_gradient): otherwise raising z outside the mask would
    shrink the term."""
    z = gradcam_before_relu(activations, gradients)
    m = tf.cast(mask_to_grid(mask, _grid(z)), z.dtype)
    scale = tf.stop_gradient(tf.reduce_max(tf.abs(z), axis=[1, 2]))
    return tf.math.divide_no_nan(tf.reduce_mean(m * tf.nn.relu(-z), axis=[1, 2]), scale)


def outside_evidence(activations: tf.Tensor, gradients: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Extension: per image, the share of the Grad-CAM's evidence of either sign (|z| before
    its ReLU, z as in `negative_evidence`) that lies outside the mask, sum((1 - m)|z|) /
    sum|z|, in [0, 1]. Why: GFSR's loss reads relu(z) / max relu(z), so a map whose only
    positive cell is outside the mask is 1 there whatever that cell's value and has no gradient
    to move it (measured, docs/studies/right-reasons.md round 6: the border cell where the
    other class's evidence sits became the true-class map of the images the model misjudged).
    This share has a gradient on every cell with z != 0, positive or negative."""
    return outside_share(tf.abs(gradcam_before_relu(activations, gradients)), mask)


def outside_share(magnitude: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per image (N,): sum((1 - m) v) / (sum v + eps) of a non-negative (N, h, w) map v, m =
    the mask area-resized to its grid. In [0, 1]; an all-zero map scores 0 (no NaN)."""
    outside = 1.0 - tf.cast(mask_to_grid(mask, _grid(magnitude)), magnitude.dtype)
    total = tf.reduce_sum(magnitude, axis=[1, 2])
    return tf.reduce_sum(outside * magnitude, axis=[1, 2]) / (total + 1e-12)


def _grid(maps: tf.Tensor):
    return maps.shape[1:3] if None not in maps.shape[1:3] else tf.shape(maps)[1:3]
