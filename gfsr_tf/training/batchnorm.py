"""Re-estimate a trained network's BatchNorm running statistics on clean training images
("precise BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

Why: a guided step runs the network in training mode more than once per step - the inner
Grad-CAM tape, images with counterfactual backgrounds - and every such forward pass moves the
running means and variances, which then describe a mixture of batches the network never sees at
inference. Measured (docs/studies/right-reasons.md): `gfsr_plus` with λ = 3 on seed 1 predicted
with test AUC 0.130 as trained and 0.979 after re-estimating the statistics, weights untouched;
on real PneumoniaMNIST paper GFSR went from 0.242 to 0.879.

Keras has no precise-BN utility: each BatchNormalization layer (nested backbones included) is
switched to momentum 0 - so a training-mode forward pass sets its running statistics to the
batch's - and the per-batch means and variances are averaged over the images, batch by batch,
as the network's training steps saw them; momenta are restored afterwards. Deterministic in the
weights and images: running it twice gives the same statistics.
"""
from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of a model, inside nested models too."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
        elif hasattr(layer, "layers"):
            out.extend(batchnorm_layers(layer))
    return out


# One traced training-mode forward pass per model (weakly keyed: dropped with the model). A
# guided run re-estimates at every epoch (batchnorm "held"): eager Keras calls of a ResNet50 cost
# about twice the traced ones. Traced with every layer at momentum 0 and trainable, which is how
# `recalibrate_batchnorm` always calls it.
_FORWARD = weakref.WeakKeyDictionary()


def _training_forward(model):
    if model not in _FORWARD:
        _FORWARD[model] = tf.function(lambda batch: model(batch, training=True),
                                      reduce_retracing=True)
    return _FORWARD[model]


def recalibrate_batchnorm(model, images, batch_size: int = 32) -> dict:
    """Set every BatchNorm layer's running mean and variance to the average over `images`
    (preprocessed, as the model takes them) of the training-mode batch statistics, in batches of
    `batch_size` (the training batch size: the statistics the weights were trained with).
    Returns {"layers": how many, "images": how many, "batches": how many}."""
    layers = batchnorm_layers(model)
    if not layers:
        return {"layers": 0, "images": int(len(images)), "batches": 0}
    momenta = [layer.momentum for layer in layers]
    # a frozen layer (trainable False) normalises with its running statistics even in training
    # mode: unfrozen for the estimate, as it was
    trainable = [layer.trainable for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)]
            for layer in layers]
    weights = 0
    try:
        for layer in layers:
            layer.momentum, layer.trainable = 0.0, True
        forward = _training_forward(model)
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start:start + batch_size], np.float32)
            forward(tf.constant(batch))
            for total, layer in zip(sums, layers):
                total[0] += len(batch) * layer.moving_mean.numpy()
                total[1] += len(batch) * layer.moving_variance.numpy()
            weights += len(batch)
        for (mean, var), layer in zip(sums, layers):
            layer.moving_mean.assign((mean / weights).astype(layer.moving_mean.dtype))
            layer.moving_variance.assign((var / weights).astype(layer.moving_variance.dtype))
    finally:
        for layer, momentum, was in zip(layers, momenta, trainable):
            layer.momentum, layer.trainable = momentum, was
    return {"layers": len(layers), "images": int(weights),
            "batches": -(-int(weights) // batch_size)}


def freeze_batchnorm(model, frozen: bool = True) -> int:
    """Freeze (or unfreeze) every BatchNorm layer: in Keras 3 a BatchNormalization layer with
    `trainable = False` normalises with its running statistics in training mode too, and its
    scale and offset leave the trainable variables (Keras' fine-tuning convention). Returns how
    many layers."""
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.trainable = not frozen
    return len(layers)


# The momentum a held layer had, so that `release_batchnorm` can restore it (a held layer's
# momentum is 1; a model saved while held keeps 1 in its config, so the original is kept on the
# layer object and, for a model loaded from such a file, restored from `default`).
_HELD_FROM = "_gfsr_momentum_before_hold"


def hold_batchnorm(model) -> int:
    """Hold every BatchNorm layer's running statistics: momentum 1, so training-mode passes
    still normalise with their batch's statistics but leave the running ones as they are.
    Returns how many layers."""
    layers = batchnorm_layers(model)
    for layer in layers:
        if not hasattr(layer, _HELD_FROM):
            setattr(layer, _HELD_FROM, layer.momentum)
        layer.momentum = 1.0
    return len(layers)


def release_batchnorm(model, default: float = 0.99) -> int:
    """Undo `hold_batchnorm`: each layer's momentum as before the hold (a layer held in another
    process - a model loaded from a file saved while held - gets `default`, the momentum the
    model was built with). Returns how many layers were held."""
    held = 0
    for layer in batchnorm_layers(model):
        if layer.momentum == 1.0 or hasattr(layer, _HELD_FROM):
            layer.momentum = getattr(layer, _HELD_FROM, default)
            if hasattr(layer, _HELD_FROM):
                delattr(layer, _HELD_FROM)
            held += 1
    return held
