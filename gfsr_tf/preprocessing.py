"""Named input preprocessors. Preprocessing belongs to the model: a method names its
preprocessor, the model card records the name, and training, `explain`, the evaluators and the
SavedModel export all look it up here. Pure TF ops, so the same function runs in tf.data, inside
training steps and inside exported SavedModels."""
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


def raw_pixels(images) -> tf.Tensor:
    """Pixels 0-255 as float32, channels untouched (models that normalise inside their graph,
    e.g. keras.applications EfficientNet)."""
    return tf.cast(tf.convert_to_tensor(images), tf.float32)


def raw_rgb(images) -> tf.Tensor:
    """Pixels 0-255 as float32 RGB (gray replicated): keras.applications models that rescale
    and normalise inside their own graph (EfficientNet)."""
    return tf.cast(to_rgb(images), tf.float32)


IMAGENET_RGB_MEAN, IMAGENET_RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def torch_mode(images) -> tf.Tensor:
    """Pixels 0-255 -> DenseNet input (keras.applications' "torch" mode): gray->RGB, / 255,
    minus the ImageNet mean, over its standard deviation, per RGB channel."""
    x = tf.cast(to_rgb(images), tf.float32) / 255.0
    return (x - tf.constant(IMAGENET_RGB_MEAN)) / tf.constant(IMAGENET_RGB_STD)


def unit_range(images) -> tf.Tensor:
    """Pixels 0-255 -> [0, 1] float32, channels untouched."""
    return raw_pixels(images) / 255.0


def tf_mode(images) -> tf.Tensor:
    """Pixels 0-255 -> [-1, 1] (keras.applications' "tf" mode: MobileNet, Xception, Inception),
    channels untouched."""
    return raw_pixels(images) / 127.5 - 1.0


# name -> (function, what it does: written into model cards for people)
PREPROCESSORS = {
    "resnet50_caffe": (preprocess, "ResNet50 caffe: gray->3 ch, RGB->BGR, ImageNet mean "
                                   "subtracted; input pixels 0-255"),
    "none": (raw_pixels, "pixels 0-255 as float32"),
    "raw_rgb": (raw_rgb, "gray->3 ch, pixels 0-255 as float32 (the model normalises itself)"),
    "unit": (unit_range, "pixels / 255"),
    "tf": (tf_mode, "keras.applications tf mode: pixels / 127.5 - 1, in [-1, 1]"),
    "torch": (torch_mode, "DenseNet torch mode: gray->3 ch, / 255, ImageNet RGB mean and std"),
}


def get_preprocessor(name: str):
    if name not in PREPROCESSORS:
        raise ValueError(f"unknown preprocessor {name!r}; choose one of "
                         f"{', '.join(PREPROCESSORS)}")
    return PREPROCESSORS[name][0]
