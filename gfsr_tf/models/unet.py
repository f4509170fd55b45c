"""SegX's segmenter: a plain U-Net (Ronneberger et al. 2015) with batch normalisation.

  encoder     4 blocks of [Conv3x3 (no bias) -> BN -> ReLU] x 2 with base x (1, 2, 4, 8) filters,
              each followed by MaxPool 2
  bottleneck  the same block with base x 16 filters
  decoder     4 x (ConvTranspose 2x2 stride 2, concatenation with the encoder block of the same
              size, the block with that block's filters)
  head        Conv1x1 `segmentation_logits` -> sigmoid `segmentation` (one channel)
With base 32 and 3 input channels: 7,763,041 trainable weights. Four poolings: the side must be
divisible by 16. A segmentation is p > 0.5.
"""
from __future__ import annotations

import keras

from .classifier import with_bn_momentum

DOWNSAMPLING = 16
LOGITS = "segmentation_logits"


def check_side(shape) -> None:
    for side in shape[:2]:
        if side is None or int(side) % DOWNSAMPLING:
            raise ValueError(f"the U-Net's input side must be divisible by {DOWNSAMPLING} (four "
                             f"2x2 poolings); got {tuple(shape[:2])}")


def conv_block(x, filters: int, name: str):
    """[Conv3x3 (no bias) -> BN -> ReLU] x 2, layers `<name>_{conv,bn,relu}{1,2}`."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                name=f"{name}_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(input_shape=(64, 64, 3), base: int = 32, *, seed: int | None = None,
               bn_momentum: float | None = None) -> keras.Model:
    """The U-Net: raw model input (N, H, W, C) -> segmentation probabilities (N, H, W, 1)."""
    check_side(input_shape)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(tuple(input_shape), name="image")
    skips, x = [], inputs
    for level in range(4):
        x = conv_block(x, base * 2 ** level, f"down{level + 1}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = conv_block(x, base * 16, "bottleneck")
    for level in reversed(range(4)):
        filters = base * 2 ** level
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level + 1}_transpose")(x)
        x = keras.layers.Concatenate(name=f"up{level + 1}_concat")([x, skips[level]])
        x = conv_block(x, filters, f"up{level + 1}")
    logits = keras.layers.Conv2D(1, 1, name=LOGITS, dtype="float32")(x)
    out = keras.layers.Activation("sigmoid", name="segmentation", dtype="float32")(logits)
    return with_bn_momentum(keras.Model(inputs, out, name="segx_unet"), bn_momentum)


def logits_model(model: keras.Model) -> keras.Model:
    """The U-Net's segmentation logits, on its weights (the loss takes logits)."""
    return keras.Model(model.inputs, model.get_layer(LOGITS).output)
