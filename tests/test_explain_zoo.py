"""Explaining models this project did not build, as users bring them: keras.applications with
their own softmax heads, Sequential models, sigmoid / two-unit softmax heads, one-element list
outputs, nested backbones under GAP + Dense + Dropout. Each either explains correctly (checked
against an independent per-image Grad-CAM) or refuses with a one-line error."""
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.models import CamModel
from gfsr_tf.saliency import explain, gradcam

SIZE = 32


def _x(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)


def reference_cam(model, x, layer, classes):
    """Independent Grad-CAM: one tape per image on the flat graph; logits = the final layer's
    input (an Activation head) or recomputed from a Dense head's kernel."""
    last = model.layers[-1]
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, last.input])
    cams = []
    for i, c in enumerate(classes):
        with tf.GradientTape() as tape:
            a, h = sub(tf.constant(x[i:i + 1]), training=False)
            z = h @ last.kernel + last.bias if isinstance(last, keras.layers.Dense) else h
            score = (z[0, 0] if c == 1 else -z[0, 0]) if z.shape[-1] == 1 else z[0, c]
        g, a = tape.gradient(score, a).numpy()[0], a.numpy()[0]
        cams.append(np.maximum((a * g.mean(axis=(0, 1))).sum(-1), 0))
    return np.stack(cams)


def explain_from_raw(cams):
    """explain()'s post-processing of raw CAMs: max-normalise, upsample to the input size."""
    norm = cams / (cams.max(axis=(1, 2), keepdims=True) + 1e-7)
    return tf.image.resize(norm[..., None], (SIZE, SIZE)).numpy()[..., 0].clip(0, 1)


def _mobilenet_top():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(include_top=True, weights=None,
                                          input_shape=(SIZE, SIZE, 3), classes=4)


def _sequential_sigmoid():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)),
                             keras.layers.Conv2D(6, 3, activation="relu", name="features"),
                             keras.layers.Conv2D(4, 3, activation="relu", name="features2"),
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(1, activation="sigmoid")])


def _functional(units, activation, as_list=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="features")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="tanh")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, [out] if as_list else out)


ZOO = {
    "keras.applications MobileNetV2 include_top (softmax Dense)": (_mobilenet_top, "out_relu"),
    "Sequential, Dense(1, sigmoid)": (_sequential_sigmoid, "features2"),
    "two-unit softmax binary head": (lambda: _functional(2, "softmax"), "features"),
    "one-element list output": (lambda: _functional(3, "softmax", as_list=True), "features"),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_third_party_models_explain_like_an_independent_gradcam(name):
    build, layer = ZOO[name]
    model = build()
    x = _x()
    probs = np.asarray(model.predict(x, verbose=0))
    classes = [0, 1, 1] if probs.shape[-1] == 1 else [i % probs.shape[-1] for i in range(3)]
    ours = gradcam(CamModel(model, layer), x, np.array(classes), normalise=False)[0].numpy()
    expected = reference_cam(model, x, layer, classes)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=1e-4)
    assert ours.max() > 0  # a real map, not the all-zero one every check would accept
    e = explain(model, x, layer=layer)
    assert e.heatmaps.shape == (3, SIZE, SIZE)
    p = probs if probs.shape[-1] > 1 else np.concatenate([1 - probs, probs], 1)
    np.testing.assert_allclose(e.probabilities, p, atol=1e-5)
    # the predicted class is explained (random-init MobileNetV2 is near-uniform: ties allowed)
    assert np.all(p[np.arange(3), e.class_index] >= p.max(1) - 1e-6)


def test_nested_backbone_under_pooling_dense_dropout_equals_its_flat_twin():
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=(SIZE, SIZE, 3))
    pool, hidden = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8, activation="relu")
    drop, head = keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax")
    # the flat twin first: the head layers' first call (what `.input` returns) is then its own
    flat = keras.Model(base.input, head(drop(hidden(pool(base.output)))))
    inputs = keras.Input((SIZE, SIZE, 3))
    nested = keras.Model(inputs, head(drop(hidden(pool(base(inputs))))))
    x, layer = _x(), "block_13_expand_relu"
    ours = explain(nested, x, layer=layer, class_index=[0, 1, 2]).heatmaps
    twin = explain(flat, x, layer=layer, class_index=[0, 1, 2]).heatmaps
    np.testing.assert_allclose(ours, twin, atol=1e-5)
    raw = reference_cam(flat, x, layer, [0, 1, 2])  # and both are the independent Grad-CAM
    np.testing.assert_allclose(ours, explain_from_raw(raw), atol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda i: [keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(i)),
                keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(i))],
     "has 2 outputs"),
    (lambda i: keras.layers.Dense(3, activation="relu")(keras.layers.GlobalAveragePooling2D()(i)),
     "final Dense layer has activation 'relu'"),
    (lambda i: keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(i),
                                           keras.layers.GlobalMaxPooling2D()(i)]),
     "cannot find the logits"),
])
def test_models_without_reachable_logits_are_refused_in_one_line(make, message):
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(4, 3, name="features")(inputs)
    model = keras.Model(inputs, make(conv))
    with pytest.raises(ValueError, match=message) as info:
        explain(model, _x(1), layer="features")
    assert "\n" not in str(info.value)


def test_cli_explains_a_saved_list_output_model_in_a_fresh_process(tmp_path):
    import cv2
    model = _functional(3, "softmax", as_list=True)
    model.save(tmp_path / "third_party.keras")
    images = (np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3))).astype(np.uint8)
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), image)
    script = Path(sys.executable).parent / "gfsr"
    r = subprocess.run([str(script), "explain", "--model", str(tmp_path / "third_party.keras"),
                        str(tmp_path / "im0.png"), str(tmp_path / "im1.png"), "--out",
                        str(tmp_path / "out"), "--quiet"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("file,overlay,explained_class")
    # the probabilities are the model's on the same pixels (no preprocessing without a card)
    x = np.stack([cv2.imread(str(tmp_path / f"im{i}.png"))[..., ::-1] for i in range(2)])
    expected = model.predict(x.astype(np.float32), verbose=0)
    got = np.array([[float(v) for v in row.split(",")[-3:]] for row in rows[1:]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
