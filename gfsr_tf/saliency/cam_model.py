"""The Grad-CAM model view of a classifier: (target activations, logits) of any Keras
classifier whose logits are reachable - flat or with a nested backbone, Sequential or
functional, sigmoid/softmax/linear heads. Every explainer and every guided training step reads
activations and logits through `CamModel`, so the map that is trained is the map that is
explained. (Moved from `models.classifier`, which now holds only the builders.)
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def output_tensor(model: keras.Model):
    """The model's single output tensor (models saved by other Keras versions often give a
    one-element list); a clear error for models with several outputs."""
    outputs = model.outputs
    if len(outputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(outputs)} outputs; explaining needs a "
                         "classifier with one (its class probabilities)")
    return outputs[0]


def as_functional(model: keras.Model) -> keras.Model:
    """A Sequential model as a functional chain over the same layers (shared weights), so its
    graph can be cut at a layer; other models unchanged."""
    if not isinstance(model, keras.Sequential):
        return model
    inputs = keras.Input(model.input_shape[1:], name=f"{model.name}_input")
    x = inputs
    for layer in model.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def single(t):
    """A one-element list of tensors as its tensor. Sub-models saved by Keras <= 3.6 load with
    their outputs as a one-element list (`sub.output` is then a list), as does any model built
    with `keras.Model(inputs, [features])`."""
    return t[0] if isinstance(t, (list, tuple)) and len(t) == 1 else t


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D (N, H, W, C) output: the standard Grad-CAM target. An
    input layer is never the target: a map of the pixels it passes on explains nothing (and
    before list outputs were unwrapped, a list-output backbone made it the silent choice, whose
    gradient came back all zero)."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = single(layer.output).shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a 4-D output to explain")


def _unnest(model: keras.Model, layer_name: str) -> keras.Model:
    """(target activations, input of the final layer) for a model whose target layer sits inside
    a nested sub-model - the usual transfer-learning shape `x = base(inputs); ...`, on which
    tf-keras-vis and the keras-io recipe fail with "Graph disconnected". The outer model must be
    a chain of single-input layers; it is re-traced layer by layer with the sub-model split open
    at the target, and the rebuilt forward pass is checked against the original."""
    owners = [l for l in model.layers if isinstance(l, keras.Model) and
              any(inner.name == layer_name for inner in l._flatten_layers(include_self=False))]
    if not owners:
        raise ValueError(f"layer {layer_name!r} not in model {model.name!r} or its sub-models")
    sub = owners[0]
    split = keras.Model(sub.inputs, [single(_find_layer(sub, layer_name).output),
                                     single(sub.output)])
    inputs = keras.Input(model.input_shape[1:])
    x, target = inputs, None
    for layer in model.layers[:-1]:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is sub:
            target, x = split(x)
        else:
            x = layer(x)
    flat = keras.Model(inputs, [target, x])
    probe = np.random.default_rng(0).uniform(0, 255, (1,) + tuple(model.input_shape[1:]))
    expected = model(probe, training=False)
    got = model.layers[-1](flat(probe, training=False)[1])
    if not np.allclose(np.asarray(expected), np.asarray(got), atol=1e-4):
        raise ValueError(f"cannot open sub-model {sub.name!r}: {model.name!r} is not a chain of "
                         "single-input layers; pass a layer of the outer model instead")
    return flat


def node_in(model: keras.Model, layer):
    """The call of `layer` that belongs to this model's graph (`layer.output`/`layer.input` give
    its first call, which is another graph's when the layer is shared - e.g. a sub-model's own
    output instead of its output inside the outer model)."""
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is layer:
                return node
    raise ValueError(f"layer {layer.name!r} is not called in model {model.name!r}")


def _final_layer_input(model: keras.Model):
    return node_in(model, model.layers[-1]).input_tensors[0]


def _find_layer(model: keras.Model, name: str):
    for layer in model._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise ValueError(f"layer {name!r} not in {model.name!r}")


class CamModel:
    """(target activations, logits) for any classifier whose logits are reachable: the input of a
    final Activation layer, or a final Dense layer with a sigmoid/softmax activation (its logits
    are recomputed from the layer's input and weights)."""

    def __init__(self, model: keras.Model, layer: str | None = None):
        self.model = model  # the model as given: its variables are the ones trained
        model = as_functional(model)
        self.num_outputs = int(output_tensor(model).shape[-1])
        self.layer_name = layer or last_conv_layer(model)
        try:
            target = node_in(model, model.get_layer(self.layer_name)).outputs[0]
        except ValueError:
            target = None
        last = model.layers[-1]
        self._check_head(last)
        self._dense = last if isinstance(last, keras.layers.Dense) else None
        activation = getattr(getattr(last, "activation", None), "__name__", "")
        # one sigmoid per class (the eye-gaze U-Net's head): scores are not a softmax
        self.multi_label = activation == "sigmoid" and self.num_outputs > 1
        if target is None:  # the layer sits inside a nested sub-model (transfer learning)
            self._inner = _unnest(model, self.layer_name)
        else:
            self._inner = keras.Model(model.inputs, [target, _final_layer_input(model)])

    @staticmethod
    def _check_head(last):
        if isinstance(last, keras.layers.Activation):
            return
        if isinstance(last, keras.layers.Dense):
            name = getattr(last.activation, "__name__", "")
            if name not in ("sigmoid", "softmax", "linear"):
                raise ValueError(f"final Dense layer has activation {name!r}; cannot find logits")
            return
        raise ValueError("cannot find the logits: the model must end in an Activation layer or a "
                         f"Dense layer with sigmoid/softmax, not {type(last).__name__}")

    def __call__(self, x, training=False):
        activations, head = self._inner(x, training=training)
        if self._dense is not None:
            head = tf.matmul(head, self._dense.kernel) + self._dense.bias
        return activations, head

    @property
    def trainable_variables(self):
        return self.model.trainable_variables
