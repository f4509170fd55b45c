"""The fused first-order GFSR step: the Grad-CAM comes from the classification loss's own backward
pass, so guided focus costs one forward and one backward pass, like plain training.

With the Grad-CAM channel weights treated as constants (first order), the CAM needs d score/dA at
the target layer A. For a single-logit binary head the mean-BCE gradient that training computes
anyway is proportional to it per image: dL/dA_i = (p_i - y_i)/N * dz_i/dA_i and the true-class
score is s_i = +z_i (y = 1) or -z_i (y = 0), so ds_i/dA_i = -dL/dA_i * N / |p_i - y_i|. The step:

  forward x -> A (lower) -> logits (upper); backward CE to A and the upper weights;
  CAM = normalise(ReLU(sum_c w_c A_c)), w = that rescaled gradient's spatial mean (constant);
  add lambda * d relevance/dA to dCE/dA and finish the backward through the lower part once.

Where the identity bends: BatchNorm in training mode couples the images of a batch (the loss
gradient weighs each image's cross terms by its own |p - y|; `benchmarks/train_step.py` measures
how far the fused CAM departs), and a saturated sigmoid (p == y in float32) has a zero gradient:
that image's CAM is then all zero and it contributes no relevance gradient (guarded, no NaN).

Softmax heads break the proportionality (dL/dA = sum_k (p_k - [k = y]) dz_k/dA mixes every
class's gradient), so there are two honest choices (`RelevanceConfig.fused_cam`):
  "logit"            the Grad-CAM of the true-class logit, as in the unfused first-order step:
                     a second backward through the layers above the target only (the lower
                     part is still traversed once);
  "log_probability"  the Grad-CAM of log p(true class) = -CE, taken straight from the loss
                     gradient: no extra pass, but a different, contrastive explanation (evidence
                     for the class *against the others*), and it fades as p(true) -> 1.
For a single-logit binary head the two coincide (the per-image factor cancels in the
normalisation), and the binary step above is used for either.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from ...losses import relevance_loss
from ...saliency.cam_model import CamModel, node_in
from ...saliency.gradcam import cam_from_gradients, class_scores


def split_at(model: keras.Model, layer: str) -> tuple[keras.Model, keras.Model]:
    """(lower: input -> layer output, upper: layer output -> logits) sharing the model's layers.
    The cut must separate the graph (true at ResNet stage boundaries such as conv3_block4_out)."""
    cam = CamModel(model, layer)
    if cam._dense is not None:
        raise ValueError("the fused first-order step needs a head ending in an Activation layer "
                         "(sigmoid or softmax, as gfsr_tf classifiers do); use second_order=False "
                         "without fused otherwise")
    target = node_in(model, model.get_layer(layer)).outputs[0]
    head = cam._inner.outputs[1]
    lower = keras.Model(model.inputs, target)
    try:
        upper = keras.Model(target, head)
    except ValueError as exc:
        raise ValueError(f"cannot fuse at {layer!r}: the layers after it also read earlier "
                         f"tensors ({exc})") from None
    return lower, upper


def fused_gradients(lower: keras.Model, upper: keras.Model, variables, x, labels, masks, lam,
                    rel_cfg, *, training: bool = True):
    """Gradients of CE + lam * relevance (first-order Grad-CAM of the true class) w.r.t.
    `variables` (the model's trainable variables, in that order), with one backward pass
    (softmax heads with fused_cam="logit": plus one above the target). Returns (grads, logits,
    ce, rel, cam)."""
    with tf.GradientTape() as lower_tape:
        activations = lower(x, training=training)
    upper_vars = upper.trainable_variables
    binary = upper.outputs[0].shape[-1] == 1
    second_backward = not binary and rel_cfg.fused_cam == "logit"
    with tf.GradientTape(persistent=second_backward) as upper_tape:
        upper_tape.watch(activations)
        logits = upper(activations, training=training)
        if binary:
            y = tf.cast(labels, tf.float32)
            ce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits[:, 0]))
        else:
            ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(labels, tf.int32), logits))
            true_logit = tf.reduce_sum(class_scores(logits, labels))
    grads = upper_tape.gradient(ce, [activations] + upper_vars,
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
    d_activations, upper_grads = grads[0], grads[1:]
    n = tf.cast(tf.shape(logits)[0], tf.float32)
    if binary:
        # ds_i/dA_i = -dL/dA_i * N / |p_i - y_i|; a saturated image (p == y) keeps a zero gradient
        residual = tf.abs(tf.sigmoid(logits[:, 0]) - y)
        scale = tf.math.divide_no_nan(n, residual)[:, None, None, None]
        d_score = tf.stop_gradient(-d_activations * scale)
    elif second_backward:
        d_score = tf.stop_gradient(upper_tape.gradient(true_logit, activations))
        del upper_tape
    else:  # d log p_y / dA_i = -N dL/dA_i
        d_score = tf.stop_gradient(-d_activations * n)
    with tf.GradientTape() as cam_tape:
        cam_tape.watch(activations)
        cam = cam_from_gradients(activations, d_score)
        rel = tf.reduce_mean(relevance_loss(cam, masks, rel_cfg.alpha, rel_cfg.beta,
                                            rel_cfg.focal_gamma))
    d_rel = cam_tape.gradient(rel, activations)
    lower_grads = lower_tape.gradient(activations, lower.trainable_variables,
                                      output_gradients=d_activations + lam * d_rel,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
    by_id = {id(v): g for v, g in zip(lower.trainable_variables + upper_vars,
                                      list(lower_grads) + list(upper_grads))}
    return [by_id[id(v)] for v in variables], logits, ce, rel, cam
