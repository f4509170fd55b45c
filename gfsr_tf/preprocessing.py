"""Keras ResNet50 ("caffe") preprocessing, grayscale -> 3 channels, resizing. Pure TF ops, so the
same function runs in tf.data, inside training steps and inside exported SavedModels."""
from __future__ import annotations

import tensorflow as tf

# ImageNet channel means in BGR order, as keras.applications.resnet50.preprocess_input uses.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def to_rgb(images: tf.Tensor) -> tf.Tensor:
    """(N, H, W, 1|3) -> (N, H, W, 3): grayscale is replicated to three channels."""
    images = tf.convert_to_tensor(images)
    if images.shape[-1] == 1:
        return tf.repeat(images, 3, axis=-1)
    if images.shape[-1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got shape {images.shape}")
    return images


def preprocess(images) -> tf.Tensor:
    """Pixels 0-255 (uint8 or float; gray or RGB) -> ResNet50 input: BGR minus ImageNet means."""
    x = tf.cast(to_rgb(images), tf.float32)
    return x[..., ::-1] - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def resize(images, size: int) -> tf.Tensor:
    """Square resize with antialiasing (area-like when shrinking), keeping the dtype's range."""
    x = tf.image.resize(tf.cast(images, tf.float32), (size, size), antialias=True)
    return x
