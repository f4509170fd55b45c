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
    """explain()'s post-processing of raw CAMs: divide by the max (an all-zero map stays zero),
    upsample to the input size."""
    peak = cams.max(axis=(1, 2), keepdims=True)
    norm = np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0)
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


def _list_output_backbone_under_linear_head():
    """The transfer model of the issue "Guided focus that is right for the right reasons", item 4:
    a keras.applications backbone nested as a sub-model whose outputs are a one-element list (as
    every sub-model saved by Keras <= 3.6 loads today) -> GAP -> Dense -> Dropout -> Dense(2)
    with a linear output."""
    keras.utils.set_random_seed(0)
    app = keras.applications.MobileNetV2(include_top=False, weights=None,
                                         input_shape=(SIZE, SIZE, 3))
    base = keras.Model(app.inputs, [app.output], name="backbone")
    assert isinstance(base.output, list)   # the shape that broke the layer search
    inputs = keras.Input((SIZE, SIZE, 3))
    features, = base(inputs)             # calling a list-output model gives a list
    x = keras.layers.GlobalAveragePooling2D()(features)
    x = keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(2)(x)), app


@pytest.mark.parametrize("layer", [None, "out_relu", "block_13_expand_relu"])
def test_list_output_nested_backbone_with_linear_head_explains_like_a_hand_gradcam(layer):
    model, app = _list_output_backbone_under_linear_head()
    x = np.random.default_rng(2).uniform(0, 1, (3, SIZE, SIZE, 3)).astype(np.float32)  # [0, 1]
    e = explain(model, x, layer=layer)
    assert e.layer == (layer or "backbone")  # the backbone's output, never the input layer
    # by hand: the backbone split at the layer, the head layers applied in order, the predicted
    # class's logit differentiated with its own tape
    inner = keras.Model(app.inputs, [app.get_layer(layer or "out_relu").output, app.output])
    with tf.GradientTape() as tape:
        a, h = inner(tf.constant(x), training=False)
        for head_layer in model.layers[2:]:
            h = head_layer(h, training=False)
        cls = tf.argmax(h, -1)
        score = tf.reduce_sum(tf.gather(h, cls, axis=1, batch_dims=1))
    g = tape.gradient(score, a).numpy()
    raw = np.maximum(np.einsum("nhwc,nc->nhw", a.numpy(), g.mean(axis=(1, 2))), 0)
    assert raw.max(axis=(1, 2)).min() > 0   # every hand map is a real map...
    np.testing.assert_array_equal(e.class_index, cls.numpy())
    np.testing.assert_allclose(e.heatmaps, explain_from_raw(raw), atol=1e-5)  # ...and so is ours
    assert e.heatmaps.max(axis=(1, 2)).min() > 0.99


def test_a_layer_cut_off_from_the_logits_is_an_error_not_an_all_zero_map():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    side = keras.layers.Conv2D(3, 3, name="side")(inputs)            # feeds nothing
    x = keras.layers.Conv2D(4, 3, activation="relu", name="features")(inputs)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, [out, side])
    with pytest.raises(ValueError, match="2 outputs"):
        explain(model, _x(1), layer="side")
    from gfsr_tf.saliency.gradcam import score_gradients
    cam_model = CamModel(keras.Model(inputs, out), "features")
    cam_model._inner = keras.Model(inputs, [side, x])     # a target the score does not depend on
    with pytest.raises(ValueError, match="not connected to the class score"):
        score_gradients(cam_model, tf.constant(_x(1)))
