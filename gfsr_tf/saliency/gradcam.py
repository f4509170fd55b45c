"""Differentiable, batched Grad-CAM (for training) and `explain` (for inference).

Conventions: the score is the class *logit* (single-unit binary head: +z for class 1, -z for
class 0); channel weights are the spatial mean of d score / dA per image and channel; CAM =
ReLU(sum_c w_c A_c), normalised per image by its max + eps (an all-zero CAM stays zero, no NaN).
LayerCAM (Jiang et al. 2021, rule "layercam") weights every cell by its own positive gradient
instead: ReLU(sum_c ReLU(dS/dA_c) A_c). tf-keras-vis has both, but not inside an outer tape (the
training loss differentiates through the map) nor on nested backbones; its Layercam is the
reference the tests compare these against.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .cam_model import CamModel

EPSILON = 1e-7


def class_scores(logits: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
    """Per-image score of `class_index` (N,) from logits (N, 1) or (N, C)."""
    class_index = tf.cast(class_index, tf.int32)
    if logits.shape[-1] == 1:
        sign = tf.cast(2 * class_index - 1, logits.dtype)
        return sign * logits[:, 0]
    return tf.gather(logits, class_index, axis=1, batch_dims=1)


def predicted_class(logits: tf.Tensor) -> tf.Tensor:
    if logits.shape[-1] == 1:
        return tf.cast(logits[:, 0] > 0, tf.int32)
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def probabilities_from_logits(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """(N, 1) -> P(class 1) as (N,); (N, C) -> softmax (N, C), or with `multi_label` (one
    sigmoid per class) the per-class sigmoids."""
    from scipy.special import expit  # no overflow warning for large negative logits
    if logits.shape[-1] == 1:
        return expit(logits[:, 0])
    if multi_label:
        return expit(logits)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def full_precision(t: tf.Tensor) -> tf.Tensor:
    """float16/bfloat16 (mixed precision) -> float32; other dtypes (float32, float64) unchanged."""
    return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t


def gradcam_before_relu(activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """z = sum_c mean_hw(dS/dA_c) A_c: (N, h, w, C) activations and gradients -> the (N, h, w)
    Grad-CAM before its ReLU (the losses that read negative evidence, HINT's importances)."""
    weights = tf.reduce_mean(gradients, axis=[1, 2])                  # (N, C)
    return tf.einsum("nhwc,nc->nhw", activations, weights)


def cam_from_gradients(activations: tf.Tensor, gradients: tf.Tensor,
                       normalise: bool = True) -> tf.Tensor:
    """(N, h, w, C) activations and gradients -> (N, h, w) CAM."""
    cam = tf.nn.relu(gradcam_before_relu(activations, gradients))
    if normalise:
        cam = cam / (tf.reduce_max(cam, axis=[1, 2], keepdims=True) + EPSILON)
    return cam


def layercam_from_gradients(activations: tf.Tensor, gradients: tf.Tensor,
                            normalise: bool = True) -> tf.Tensor:
    """(N, h, w, C) activations and gradients -> (N, h, w) LayerCAM: each cell's channels weighted
    by their own positive gradient (no channel mean, so evidence in one place is not cancelled
    by the opposite gradient elsewhere - the reason Grad-CAM at conv3 empties, right-reasons.md)."""
    cam = tf.nn.relu(tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1))
    if normalise:
        cam = cam / (tf.reduce_max(cam, axis=[1, 2], keepdims=True) + EPSILON)
    return cam


# the map rules a model can be trained towards and explained by (RelevanceConfig.saliency)
SALIENCY_RULES = {"gradcam": cam_from_gradients, "layercam": layercam_from_gradients}


def scale_free(cam: tf.Tensor) -> tf.Tensor:
    """An explanation's (N, h, w) CAM divided by its own max: the maps users see (explain, the
    exported `explain` signature). Unlike the training CAM's fixed epsilon, this does not turn a
    map whose values are all ~1e-8 (a small-activation network) into an almost-empty one; an
    all-zero CAM stays exactly zero."""
    return tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=[1, 2], keepdims=True))


def score_gradients(cam_model: CamModel, x: tf.Tensor, class_index=None, *,
                    training: bool = False, input_gradients: bool = False):
    """(activations A, logits, dS/dA[, dS/dx]) of the summed class score S, recorded so that an
    outer GradientTape can differentiate through them (second order). class_index None = the
    predicted class; a negative index = the predicted class for that image.

    Documented behaviour (tests/test_gradcam.py checks both on Keras' ResNet50):
    - training=True: BatchNorm normalises with batch statistics, so S's gradient couples the
      images of a batch. At a ResNet stage output every consumer is conv -> BN, and the gradient
      reaching a BN input sums to zero over (N, H, W) per channel; the convs are linear, so the
      spatial-mean gradients (the Grad-CAM channel weights) sum to zero over the batch for every
      channel: the CAM trained in training mode is batch-contrastive, not the CAM evaluated.
    - The next stage's 1x1 stride-2 convolutions read only cells (2i, 2j) of a stage output: the
      other 75 % have a gradient of exactly 0 (`live_cells`).
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        if input_gradients:
            tape.watch(x)
        activations, logits = cam_model(x, training=training)
        logits = full_precision(logits)  # mixed precision: the score in float32
        if class_index is None:
            class_index = predicted_class(logits)
        else:
            class_index = tf.cast(class_index, tf.int32)
            class_index = tf.where(class_index < 0, predicted_class(logits), class_index)
        score = tf.reduce_sum(class_scores(logits, class_index))
    sources = [activations, x] if input_gradients else [activations]
    # A target the score does not depend on is an error, never a silent all-zero map (with
    # UnconnectedGradients.ZERO a cut graph once explained every image as empty).
    grads = tape.gradient(score, sources)
    if grads[0] is None:
        raise ValueError(f"layer {cam_model.layer_name!r} is not connected to the class score "
                         "in this model's graph; choose another --layer")
    return (activations, logits, grads[0]) + ((grads[1],) if input_gradients else ())


def live_cells(t: tf.Tensor) -> tf.Tensor:
    """The cells (2i, 2j) of a ResNet stage output (N, h, w, ...): the only ones the next stage's
    1x1 stride-2 convolutions read (Keras' ResNet50 v1 strides block1's 1x1 convs)."""
    return t[:, ::2, ::2]


def gradcam(cam_model: CamModel, x: tf.Tensor, class_index=None, *, training: bool = False,
            second_order: bool = True, normalise: bool = True, input_gradients: bool = False,
            cells: str = "all", rule: str = "gradcam"):
    """Grad-CAM that can sit inside an outer GradientTape.

    second_order=True differentiates the CAM's dependence on the channel weights (the inner
    tape's gradient is itself recorded by the outer tape); False treats the weights as
    constants. class_index None = predicted class. With input_gradients, also returns
    d score / d x. In training mode BatchNorm couples the images of a batch (`score_gradients`).
    cells="live": the CAM on the (h/2, w/2) sub-grid the next stage reads (`live_cells`).
    rule: "gradcam" or "layercam" (SALIENCY_RULES).

    Returns (cam (N, h, w), logits, activations[, input_gradients]).
    """
    out = score_gradients(cam_model, x, class_index, training=training,
                          input_gradients=input_gradients)
    activations, logits, dA = out[:3]
    dA = dA if second_order else tf.stop_gradient(dA)
    if cells == "live":
        activations, dA = live_cells(activations), live_cells(dA)
    elif cells != "all":
        raise ValueError(f"cells must be 'all' or 'live', got {cells!r}")
    # mixed precision: the CAM (and so the relevance loss) in float32
    cam = saliency_rule(rule)(full_precision(activations), full_precision(dA), normalise)
    return (cam, logits, activations) + tuple(out[3:])


def saliency_rule(rule: str):
    if rule not in SALIENCY_RULES:
        raise ValueError(f"unknown saliency rule {rule!r}; choose one of "
                         f"{', '.join(SALIENCY_RULES)}")
    return SALIENCY_RULES[rule]


@dataclass
class Explanation:
    probabilities: np.ndarray   # (N, C) - binary heads give [1 - p, p]
    heatmaps: np.ndarray        # (N, H, W) in [0, 1] at input resolution
    class_index: np.ndarray     # (N,) class each heatmap explains
    layer: str


_EXPLAINERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _explainer(model, layer, rule="gradcam"):
    """One traced map function per (model, layer, rule), reused across `explain` calls."""
    saliency_rule(rule)
    if isinstance(model, CamModel):
        model, layer = model.model, model.layer_name
    per_model = _EXPLAINERS.setdefault(model, {})
    if (layer, rule) not in per_model:
        cam_model = CamModel(model, layer)

        @tf.function(reduce_retracing=True)
        def run(x, cls):
            cam, logits, _ = gradcam(cam_model, x, cls, second_order=False, normalise=False,
                                     rule=rule)
            heat = tf.image.resize(scale_free(cam)[..., None], tf.shape(x)[1:3])[..., 0]
            return heat, logits, tf.where(cls < 0, predicted_class(logits), cls)

        per_model[(layer, rule)] = (cam_model, run)
    return per_model[(layer, rule)]


def explain(model, images, *, layer: str | None = None, class_index=None,
            batch_size: int = 32, rule: str = "gradcam") -> Explanation:
    """Grad-CAM (or, with rule="layercam", LayerCAM) heatmaps and probabilities for any Keras
    classifier with reachable logits.

    images: what the model takes as input (for gfsr_tf classifiers: `preprocessing.preprocess`d).
    layer: target layer (default: the last layer with a 4-D output). class_index: None (the
    predicted class), an int, or one int per image.
    """
    cam_model, run = _explainer(model, layer, rule)
    images = np.asarray(images, np.float32)
    n = len(images)
    if class_index is None:
        class_index = np.full(n, -1, np.int32)  # -1: the predicted class
    else:
        class_index = np.broadcast_to(np.asarray(class_index, np.int32), (n,))
        if np.any(class_index < 0) or np.any(class_index >= max(2, cam_model.num_outputs)):
            raise ValueError(f"class_index out of range: {class_index}")

    probs, maps, used = [], [], []
    for start in range(0, n, batch_size):
        x, cls = images[start:start + batch_size], class_index[start:start + batch_size]
        k = len(x)
        if n > batch_size and k < batch_size:  # pad the last batch: one trace per layer, not two
            x = np.concatenate([x, np.repeat(x[-1:], batch_size - k, 0)])
            cls = np.concatenate([cls, np.repeat(cls[-1:], batch_size - k)])
        cam, logits, c = run(tf.constant(x), tf.constant(cls))
        cam, logits, c = cam[:k], logits[:k], c[:k]
        p = probabilities_from_logits(logits.numpy(), cam_model.multi_label)
        probs.append(np.stack([1 - p, p], 1) if p.ndim == 1 else p)
        maps.append(np.clip(cam.numpy(), 0, 1))
        used.append(c.numpy())
    return Explanation(np.concatenate(probs), np.concatenate(maps), np.concatenate(used),
                       cam_model.layer_name)
