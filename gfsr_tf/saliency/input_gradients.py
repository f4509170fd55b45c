"""Input-gradient heatmaps with modified backward rules - plain gradient, guided backpropagation
(Springenberg et al.), DeconvNet (Zeiler & Fergus) - on any Keras classifier, differentiable so
that a loss on the map trains the weights (Watanabe et al. 2022's model sets 1-3).

The rule view (`rule_view`) is the model itself, on the same weights, with three things changed
for the duration of a call (the changes are Python attributes read when a layer is traced, so
entering the view inside a traced function bakes them into that trace only; the model is
restored on exit and its own traces are untouched):
  - every guidable activation - a layer whose `activation` is ReLU or swish/SiLU, or a plain
    `keras.layers.ReLU` - gets a `tf.custom_gradient` twin. For upstream gradient d and forward
    input x the backward rules are
        gradient         f'(x) d                      (the control)
        guided_backprop  f'(x) [x > 0] max(d, 0)      (ReLU: [x > 0] max(d, 0))
        deconvnet        max(d, 0)                    (the forward input is ignored)
    Swish is gated on its input's sign as ReLU is; without a swish rule EfficientNet (swish on
    its whole classification path) would silently return the plain gradient. Squeeze-excite
    internals (`*_se_*` layers) and sigmoid gates stay ordinary;
  - the output layer's activation becomes linear: the score is a logit, as tf-keras-vis's
    `ReplaceToLinear` does;
  - Dropout is off and BatchNorm keeps its batch statistics in training mode but does not move
    its running averages (momentum 1 for the call), so the training step's own forward pass
    updates them once per step.
Every rule is made of differentiable ops, so a loss on the map has gradients with respect to
the weights (a double backward: trace it, never run it eagerly).

Map: score = logit of the predicted class (or the given class), G = |sum over input channels of
d score / d x|, M = G / (max G + eps) per image.

tf-keras-vis's `GuidedBackpropagation` modifier changes the model in place (on a clone, with
copied weights) and has no DeconvNet or swish rule, and lucid-style gradient overrides are
TF1-only: hence this module.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

RULES = ("gradient", "guided_backprop", "deconvnet")
EPS = 1e-7


def _relu_grad(x):
    return tf.cast(x > 0, x.dtype)


def _silu_grad(x):
    s = tf.sigmoid(x)
    return s * (1 + x * (1 - s))


GUIDABLE = {keras.activations.relu: _relu_grad, keras.activations.silu: _silu_grad}


def _capped_relu_grad(max_value):
    """keras.layers.ReLU's derivative: 1 on (0, max_value) (ReLU6: max_value 6)."""
    if max_value is None:
        return _relu_grad
    return lambda x: tf.cast((x > 0) & (x < max_value), x.dtype)


def _ruled(forward, local_grad, rule: str):
    """`forward` with the backward rule `rule` (differentiable in both passes)."""
    @tf.custom_gradient
    def activation(x):
        def grad(d):
            if rule == "deconvnet":
                return tf.nn.relu(d)
            if rule == "guided_backprop":
                return local_grad(x) * tf.cast(x > 0, d.dtype) * tf.nn.relu(d)
            return local_grad(x) * d
        return forward(x), grad
    return activation


def guidable_layers(model: keras.Model) -> list:
    """The layers whose activation the rule replaces (squeeze-excite internals excluded)."""
    out = []
    for layer in model._flatten_layers(include_self=False):
        if "_se_" in layer.name:
            continue
        if isinstance(layer, keras.layers.ReLU):
            if not layer.negative_slope and not layer.threshold:   # ReLU and ReLU6
                out.append(layer)
        elif getattr(layer, "activation", None) in GUIDABLE:
            out.append(layer)
    return out


@contextlib.contextmanager
def rule_view(model: keras.Model, rule: str):
    """Within the block, calling `model` runs its rule view (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"unknown backward rule {rule!r}; choose one of {', '.join(RULES)}")
    layers = guidable_layers(model)
    if not layers:
        inspected = [l.name for l in model._flatten_layers(include_self=False)
                     if hasattr(l, "activation") or isinstance(l, keras.layers.ReLU)]
        listed = ", ".join(inspected[:12]) + (f" and {len(inspected) - 12} more"
                                              if len(inspected) > 12 else "")
        raise ValueError(f"model {model.name!r} has no guidable activation (ReLU or swish); "
                         f"layers inspected: {listed or 'none'}")
    saved = []
    try:
        for layer in layers:
            if isinstance(layer, keras.layers.ReLU):
                saved.append((layer, "call", layer.__dict__.get("call")))
                layer.call = _ruled(layer.call, _capped_relu_grad(layer.max_value), rule)
            else:
                saved.append((layer, "activation", layer.activation))
                layer.activation = _ruled(layer.activation, GUIDABLE[layer.activation], rule)
        last = model.layers[-1]
        if getattr(last, "activation", None) is not None and last not in layers:
            saved.append((last, "activation", last.activation))
            last.activation = keras.activations.linear
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                saved.append((layer, "momentum", layer.momentum))
                layer.momentum = 1.0
            elif isinstance(layer, keras.layers.Dropout):
                saved.append((layer, "rate", layer.rate))
                layer.rate = 0.0
        yield model
    finally:
        for layer, name, value in reversed(saved):
            if name == "call" and value is None:
                del layer.call
            else:
                setattr(layer, name, value)


def score_of(logits: tf.Tensor, class_index=None) -> tf.Tensor:
    """(B,) logit of the given class per image, default the predicted one (a single-unit
    binary head: +z for class 1, -z for class 0)."""
    if not logits.dtype.is_floating or logits.dtype.size < 4:   # float16 under mixed precision
        logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        if class_index is None:
            return tf.abs(z)          # the predicted class's logit: z if z > 0 else -z
        return tf.where(tf.cast(class_index, tf.int32) == 1, z, -z)
    cls = tf.argmax(logits, -1, output_type=tf.int32) if class_index is None else \
        tf.cast(class_index, tf.int32)
    return tf.gather(logits, cls, batch_dims=1)


def normalise(g: tf.Tensor) -> tf.Tensor:
    """M = G / (max G + eps) per image (an all-zero G gives an all-zero map, no NaN)."""
    top = tf.reduce_max(g, axis=[1, 2], keepdims=True)
    return g / (top + EPS)


def rule_gradient(model: keras.Model, x: tf.Tensor, rule: str, class_index=None, *,
                  training: bool = False, output: int = 0) -> tf.Tensor:
    """d score / d x (the input's shape) under `rule`, differentiable w.r.t. the weights (call
    it under an outer GradientTape to train on it). `output`: which of the model's outputs holds
    the class logits (multi-output models)."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    with rule_view(model, rule):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x, training=training)
            logits = tf.nest.flatten(out)[output]
            score = tf.reduce_sum(score_of(logits, class_index))
        return tape.gradient(score, x)


def rule_maps(model: keras.Model, x: tf.Tensor, rule: str, class_index=None, *,
              training: bool = False, output: int = 0) -> tf.Tensor:
    """M (B, H, W) = |sum_c d score / d x_c| / max, under `rule` (see `rule_gradient`)."""
    grad = rule_gradient(model, x, rule, class_index, training=training, output=output)
    return normalise(tf.abs(tf.reduce_sum(grad, axis=-1)))


def explain_rule(model, images, rule: str, class_index=None, batch_size: int = 32):
    """Maps (N, H, W) in [0, 1] and the explained class for model inputs `images`."""
    from .gradcam import Explanation
    images = np.asarray(images, np.float32)
    fn = tf.function(lambda x, c: rule_maps(model, x, rule, c), reduce_retracing=True)
    fn_pred = tf.function(lambda x: rule_maps(model, x, rule, None), reduce_retracing=True)
    probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)
    probs = np.concatenate([1 - probs, probs], 1) if probs.shape[-1] == 1 else probs
    cls = probs.argmax(1) if class_index is None else \
        np.broadcast_to(np.asarray(class_index, np.int32), (len(images),)).copy()
    maps = []
    for i in range(0, len(images), batch_size):
        x = tf.constant(images[i:i + batch_size])
        maps.append((fn_pred(x) if class_index is None else
                     fn(x, tf.constant(cls[i:i + batch_size]))).numpy())
    return Explanation(probs, np.concatenate(maps).astype(np.float32), cls, "")
