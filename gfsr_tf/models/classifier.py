"""The GFSR classifier: ResNet50 -> GlobalMaxPool -> Dense(128) -> Dropout -> logits -> activation.
SegX's classifiers are the same builder with `head="multilabel"` (one sigmoid per class),
`backbone="densenet121"` and `pooling="avg"` (GAP -> Dense(256, ReLU) -> Dense(K)).

One flat functional graph (the head is built on `backbone.output`), so the target conv block and
the logits come out of the same model, and the saved artifact is a plain Keras model.
"""
from __future__ import annotations

import logging

import keras
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


def build_backbone(input_shape, weights, warnings: list | None, name: str = "resnet50"):
    """A headless Keras application (ResNet50 or DenseNet121), ImageNet weights or random."""
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
    dense_units: the hidden Dense layer's width; 0 = none (with pooling "avg" and dropout 0: a
    CAM head, GAP -> linear logits).
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
        build_backbone(tuple(input_shape), weights, warnings, backbone_name)
    with_bn_momentum(backbone, bn_momentum)
    pool = keras.layers.GlobalMaxPooling2D(name="global_max_pool") if pooling == "max" else \
        keras.layers.GlobalAveragePooling2D(name="global_avg_pool")
    x = pool(backbone.output)
    if dense_units:
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
