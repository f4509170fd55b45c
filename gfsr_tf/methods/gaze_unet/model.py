"""The eye-gaze U-Net (Karargyris et al. 2021; the baseline of Watanabe et al. 2022): an
EfficientNet-B0 encoder, a classification head with one sigmoid per class, and a decoder that
predicts the radiologist's static gaze heatmap.

  encoder   keras.applications.EfficientNetB0(include_top=False): raw 0-255 RGB input (it
            rescales and normalises inside its graph), weights "auto" (ImageNet when reachable)
  head      block7a_project_bn -> GlobalAveragePooling -> Dropout 0.5 -> Dense `logits` ->
            Activation sigmoid `probabilities` (three sigmoids trained with BCE on one-hot
            labels, as the reference does - not a softmax)
  decoder   5 blocks of (nearest x2 upsampling, concatenation with the skip, 2 x (Conv3x3 - BN -
            ReLU)) with 256, 128, 64, 32, 16 filters, skips block5c_add, block3b_add,
            block2b_add, stem_activation and none -> Conv1x1 `gaze_logits` -> sigmoid `gaze`
            at input size
The model has two outputs [probabilities, gaze]; `classifier_view` is the single-output
classifier on the same weights, which Grad-CAM, the evaluators and the export take. The
classification-only variant (decoder=False) is that classifier alone.
"""
from __future__ import annotations

import keras

from ...models.classifier import pretrained_or_random, with_bn_momentum
from ...models.unet import conv_block


SKIPS = ("block5c_add", "block3b_add", "block2b_add", "stem_activation", None)
DECODER_FILTERS = (256, 128, 64, 32, 16)
BOTTLENECK = "block7a_project_bn"
STRIDE = 32


def check_size(size: int) -> None:
    if size < STRIDE or size % STRIDE:
        valid = ", ".join(str(STRIDE * k) for k in range(1, 17))
        raise ValueError(f"the gaze U-Net takes square images whose side is a multiple of "
                         f"{STRIDE} (five stride-2 stages); got {size}. Valid sizes: {valid}, ...")


def _encoder(input_shape, weights, warnings):
    return pretrained_or_random(lambda w: keras.applications.EfficientNetB0(
        include_top=False, weights=w, input_shape=input_shape), weights, warnings,
        "gaze U-Net's EfficientNetB0")


def build_gaze_unet(num_classes: int = 3, input_shape=(224, 224, 3), weights="auto", *,
                    decoder: bool = True, dropout: float = 0.5, seed: int | None = None,
                    bn_momentum: float | None = None,
                    warnings: list | None = None) -> keras.Model:
    """The gaze U-Net ([probabilities, gaze]) or, with decoder=False, its classifier alone.
    bn_momentum: every BatchNorm's (Keras' 0.99 needs ~1000 steps to settle its running
    statistics; short CPU runs then validate on unsettled ones and predict one class)."""
    if input_shape[0] != input_shape[1]:
        raise ValueError(f"the gaze U-Net takes square images, got {input_shape[:2]}")
    check_size(int(input_shape[0]))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    encoder = _encoder(tuple(input_shape), weights, warnings)
    bottleneck = encoder.get_layer(BOTTLENECK).output
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(bottleneck)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    probabilities = keras.layers.Activation("sigmoid", name="probabilities",
                                            dtype="float32")(logits)
    if not decoder:
        return with_bn_momentum(keras.Model(encoder.input, probabilities, name="gaze_classifier"),
                         bn_momentum)
    y = bottleneck
    for k, (skip, filters) in enumerate(zip(SKIPS, DECODER_FILTERS), 1):
        y = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"decoder{k}_up")(y)
        if skip is not None:
            y = keras.layers.Concatenate(name=f"decoder{k}_concat")(
                [y, encoder.get_layer(skip).output])
        y = conv_block(y, filters, f"decoder{k}")
    gaze_logits = keras.layers.Conv2D(1, 1, name="gaze_logits", dtype="float32")(y)
    gaze = keras.layers.Activation("sigmoid", name="gaze", dtype="float32")(gaze_logits)
    return with_bn_momentum(keras.Model(encoder.input, [probabilities, gaze], name="gaze_unet"),
                     bn_momentum)


def classifier_view(model: keras.Model) -> keras.Model:
    """The single-output classifier of a gaze U-Net (same layers, same weights); a model with
    one output is returned as it is."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.get_layer("probabilities").output,
                       name=f"{model.name}_classifier")


def logits_model(model: keras.Model) -> keras.Model:
    """(class logits[, gaze logits]) of a gaze U-Net, on its weights: what training needs."""
    outputs = [model.get_layer("logits").output]
    if len(model.outputs) > 1:
        outputs.append(model.get_layer("gaze_logits").output)
    return keras.Model(model.inputs, outputs)
