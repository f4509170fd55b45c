"""TF Serving export: a SavedModel whose signatures take raw pixels (preprocessing in the graph).

Signatures (input `images`: float32 (N, H, W, C), pixel values 0-255, H, W, C as trained):
  serving_default -> probabilities (N, num_classes)   [binary heads give P(class 0), P(class 1)]
  explain         -> probabilities, predicted_class (N,) int32,
                     heatmap (N, H, W) float32 in [0, 1]: Grad-CAM of the predicted class,
                     computed in-graph and upsampled bilinearly to the input size.
Shapes and dtypes are fixed by the signature, so a wrong size, channel count or dtype is
rejected by TensorFlow before the model runs.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from .saliency.cam_model import CamModel, output_tensor
from .preprocessing import get_preprocessor
from .saliency.gradcam import gradcam, scale_free


def _probabilities(logits: tf.Tensor, multi_label: bool = False) -> tf.Tensor:
    """The model's own output activation: binary [1 - p, p], one sigmoid per class for
    multi-label heads (a softmax over them would be wrong - the public SegX code's bug), else
    softmax."""
    if logits.shape[-1] == 1:
        p = tf.sigmoid(logits)
        return tf.concat([1.0 - p, p], axis=-1)
    if multi_label:
        return tf.sigmoid(logits)
    return tf.nn.softmax(logits, axis=-1)


def export_saved_model(model: keras.Model, path, *, layer: str | None = None,
                       class_names=None, channels: int | None = None,
                       preprocessor: str = "resnet50_caffe") -> Path:
    """Write a SavedModel with `serving_default` and `explain` (see the module docstring).

    channels: what clients send (1 for grayscale X-rays, 3 for RGB); default the model's input
    channels. preprocessor: the model card's (gfsr_tf.preprocessing.PREPROCESSORS), run in the
    graph. A `signatures.json` beside it records names, shapes and class names. Everything is
    validated first and written to a temporary folder renamed into place, so a bad argument
    leaves nothing behind and an existing export is replaced whole.
    """
    path = Path(path)
    height, width, model_channels = model.input_shape[1:]
    channels = channels or model_channels
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    num_classes = max(2, int(output_tensor(model).shape[-1]))
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    preprocess = get_preprocessor(preprocessor)
    cam_model = CamModel(model, layer)
    spec = tf.TensorSpec((None, height, width, channels), tf.float32, name="images")

    expected = tf.constant([height, width, channels])
    message = (f"images must be float32 pixels 0-255 shaped (N, {height}, {width}, {channels})")

    def checked(images):
        # Signatures do not enforce their static shape at call time: check it here, in-graph.
        # The check must run before preprocessing, or a wrong channel count fails first inside
        # the mean subtraction with a cryptic broadcast error.
        check = tf.debugging.assert_equal(tf.shape(images)[1:], expected, message=message)
        with tf.control_dependencies([check]):
            return preprocess(tf.identity(images))

    def serve(images):
        _, logits = cam_model(checked(images), training=False)
        return {"probabilities": _probabilities(logits, cam_model.multi_label)}

    def explain(images):
        cam, logits, _ = gradcam(cam_model, checked(images), None, second_order=False,
                                 normalise=False)
        heatmap = tf.image.resize(scale_free(cam)[..., None], (height, width))[..., 0]
        probabilities = _probabilities(logits, cam_model.multi_label)
        return {"probabilities": probabilities,
                "predicted_class": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
                "heatmap": tf.clip_by_value(heatmap, 0.0, 1.0)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.add_endpoint("explain", explain, input_signature=[spec])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        archive.write_out(str(tmp / "model"), verbose=False)
        (tmp / "model" / "signatures.json").write_text(json.dumps({
            "input": {"name": "images", "dtype": "float32",
                      "shape": [None, height, width, channels], "range": "0-255 pixels"},
            "class_names": names, "grad_cam_layer": cam_model.layer_name,
            "preprocessor": preprocessor,
            "signatures": {"serving_default": ["probabilities"],
                           "explain": ["probabilities", "predicted_class", "heatmap"]}},
            indent=2))
        if path.exists():
            shutil.rmtree(path)
        (tmp / "model").rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
