"""The GFSR classifier: ResNet50 -> GlobalMaxPool -> Dense(128) -> Dropout -> logits -> activation.
SegX's classifiers are the same builder with `head="multilabel"` (one sigmoid per class),
`backbone="densenet121"` and `pooling="avg"` (GAP -> Dense(256, ReLU) -> Dense(K)).

One flat functional graph (the head is built on `backbone.output`), so the target conv block and
the logits come out of the same model, and the saved artifact is a plain Keras model.
"""
from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

LOGITS_LAYER = "logits"
OUTPUT_LAYER = "probabilities"
RANDOM_INIT_WARNING = ("ImageNet weights unavailable ({reason}); the {name} backbone starts from "
                       "random initialisation - results are not comparable with ImageNet-initialised runs")


def pretrained_or_random(build, weights, warnings: list | None, name: str = "ResNet50"):
    """build(weights) with `weights` "auto" (ImageNet if obtainable, else random init with a
    warning appended to `warnings`), "imagenet", None or a weights file."""
    if weights == "auto":
        try:
            return build("imagenet")
        except Exception as exc:  # offline, no cache: fall back loudly
            message = RANDOM_INIT_WARNING.format(reason=f"{type(exc).__name__}: {str(exc)[:120]}",
                                                 name=name)
            log.warning(message)
            if warnings is not None:
                warnings.append(message)
            weights = None
    if weights not in (None, "imagenet") and not tf.io.gfile.exists(str(weights)):
        raise FileNotFoundError(f"weights file not found: {weights}")
    return build(weights)


def with_bn_momentum(model: keras.Model, bn_momentum: float | None) -> keras.Model:
    """Set every BatchNorm's momentum (None: keep Keras' 0.99, whose running statistics need
    ~1000 steps to settle - short CPU runs then validate on unsettled ones)."""
    if bn_momentum is not None:
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    return model


def _backbone(input_shape, weights, warnings: list | None, name: str = "resnet50"):
    if name == "densenet121":
        return pretrained_or_random(lambda w: keras.applications.DenseNet121(
            include_top=False, weights=w, input_shape=input_shape), weights, warnings,
            "DenseNet121")
    return pretrained_or_random(lambda w: keras.applications.ResNet50(
        include_top=False, weights=w, input_shape=input_shape), weights, warnings)


# Stage outputs of the small CNN carry the names of ResNet50's at the same strides (4, 8, 16, 32),
# so presets, Grad-CAM layers and the fused step's cut points work unchanged on it.
SMALL_CNN_STAGES = (("conv1_relu", 8), ("conv2_block3_out", 16), ("conv3_block4_out", 32),
                    ("conv4_block6_out", 64), ("conv5_block3_out", 64))


def small_cnn(input_shape) -> keras.Model:
    """A five-stage conv -> BatchNorm -> ReLU network (stride 2 each, ~60k weights): the same
    graph shape as ResNet50 at a fraction of the cost, for tests and quick checks. No pretrained
    weights exist for it."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, (name, filters) in enumerate(SMALL_CNN_STAGES, 1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                                name=f"small_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"small_bn{i}")(x)
        x = keras.layers.Activation("relu", name=name)(x)
    return keras.Model(inputs, x, name="small_cnn")


BACKBONES = ("resnet50", "densenet121", "small_cnn")
# per backbone: the preprocessor its pretrained weights expect (gfsr_tf.preprocessing) and the
# Grad-CAM layer (the last conv block's output)
BACKBONE_CARD = {"resnet50": ("resnet50_caffe", "conv5_block3_out"),
                 "densenet121": ("torch", "relu"),
                 "small_cnn": ("resnet50_caffe", "conv5_block3_out")}
HEADS = ("single", "multilabel")


def build_classifier(num_classes: int = 2, input_shape=(128, 128, 3), weights="auto", *,
                     dense_units: int = 128, dropout: float = 0.3,
                     bn_momentum: float | None = None, seed: int | None = None,
                     warnings: list | None = None, mixed_precision: bool = False,
                     backbone: str = "resnet50", multi_label: bool = False,
                     head: str = "single", pooling: str = "max") -> keras.Model:
    """Build the classifier. Two classes use one sigmoid unit; more use softmax.

    weights: "auto" (ImageNet if obtainable, else random init with a warning appended to
    `warnings`), "imagenet", None, or a path to ResNet50 (no-top) weights.
    mixed_precision: build under Keras' "mixed_float16" policy (a GPU option: float16 compute,
    float32 variables); the logits and probabilities stay float32.
    backbone: "resnet50" (the paper's), "densenet121" (SegX's second; "torch" preprocessing,
    Grad-CAM layer `relu`: BACKBONE_CARD) or "small_cnn" (tests; `weights` is ignored).
    multi_label: more than two classes get one sigmoid each instead of a softmax.
    head: "single" (the above) or "multilabel": K sigmoid units for any K >= 2, trained with
    the mean BCE over images x classes on `ImageSet.label_matrix()`.
    pooling: "max" (GFSR's GlobalMaxPool) or "avg" (SegX's GAP).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling must be max or avg, got {pooling!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    if mixed_precision:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            return _build(num_classes, input_shape, weights, dense_units, dropout, bn_momentum,
                          warnings, backbone, multi_label, head, pooling)
        finally:
            keras.config.set_dtype_policy(previous)
    return _build(num_classes, input_shape, weights, dense_units, dropout, bn_momentum, warnings,
                  backbone, multi_label, head, pooling)


def _build(num_classes, input_shape, weights, dense_units, dropout, bn_momentum, warnings,
           backbone_name="resnet50", multi_label=False, head="single", pooling="max"):
    backbone = small_cnn(tuple(input_shape)) if backbone_name == "small_cnn" else \
        _backbone(tuple(input_shape), weights, warnings, backbone_name)
    with_bn_momentum(backbone, bn_momentum)
    pool = keras.layers.GlobalMaxPooling2D(name="global_max_pool") if pooling == "max" else \
        keras.layers.GlobalAveragePooling2D(name="global_avg_pool")
    x = pool(backbone.output)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    multi = head == "multilabel"
    units = 1 if num_classes == 2 and not multi else num_classes
    # float32 head: logits and probabilities keep full precision under mixed precision
    logits = keras.layers.Dense(units, name=LOGITS_LAYER, dtype="float32")(x)
    activation = "sigmoid" if units == 1 or multi_label or multi else "softmax"
    outputs = keras.layers.Activation(activation, name=OUTPUT_LAYER, dtype="float32")(logits)
    return keras.Model(backbone.input, outputs, name="gfsr_classifier")


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


def last_conv_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D (N, H, W, C) output: the standard Grad-CAM target."""
    for layer in reversed(model.layers):
        try:
            shape = layer.output.shape
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
    split = keras.Model(sub.inputs, [_find_layer(sub, layer_name).output, sub.output])
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


def _node_in(model: keras.Model, layer):
    """The call of `layer` that belongs to this model's graph (`layer.output`/`layer.input` give
    its first call, which is another graph's when the layer is shared - e.g. a sub-model's own
    output instead of its output inside the outer model)."""
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is layer:
                return node
    raise ValueError(f"layer {layer.name!r} is not called in model {model.name!r}")


def _final_layer_input(model: keras.Model):
    return _node_in(model, model.layers[-1]).input_tensors[0]


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
            target = _node_in(model, model.get_layer(self.layer_name)).outputs[0]
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
