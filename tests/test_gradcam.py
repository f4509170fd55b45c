import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_classifier

from gfsr_tf import explain
from gfsr_tf.losses import relevance_loss
from gfsr_tf.models import CamModel
from gfsr_tf.saliency import gradcam


def _images(n=3, size=16, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(0, 1, (n, size, size, 3)).astype(dtype)


def _reference_cam(model, x, layer, class_index):
    """Independent Grad-CAM: per image, its own tape, explicit loops (no batching tricks)."""
    import keras
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.get_layer("logits").output])
    cams = []
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            a, z = sub(tf.constant(x[i:i + 1]))
            score = z[0, 0] if class_index[i] == 1 else -z[0, 0]
        g = tape.gradient(score, a).numpy()[0]
        a = a.numpy()[0]
        w = g.mean(axis=(0, 1))
        cam = np.maximum((a * w).sum(-1), 0)
        cams.append(cam / (cam.max() + 1e-7))
    return np.stack(cams)


def test_batched_gradcam_equals_per_image_reference():
    model = tiny_classifier()
    x = _images()
    cls = np.array([1, 0, 1])
    cam, _, _ = gradcam(CamModel(model, "target"), x, cls)
    np.testing.assert_allclose(cam.numpy(), _reference_cam(model, x, "target", cls), atol=1e-5)


def test_matches_tf_keras_vis_gradcam():
    tkv = pytest.importorskip("tf_keras_vis.gradcam")
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore
    model = tiny_classifier(units=3)
    x = _images()
    cls = [0, 2, 1]
    try:
        theirs = tkv.Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)(
            CategoricalScore(cls), x, penultimate_layer="target", normalize_cam=False,
            expand_cam=False)
    except Exception as exc:  # tf-keras-vis predates Keras 3 in places
        pytest.skip(f"tf-keras-vis cannot run this Keras model: {exc}")
    theirs = np.asarray(theirs)
    ours = gradcam(CamModel(model, "target"), x, np.array(cls), normalise=False)[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    # and with the same per-image max normalisation
    norm = theirs / (theirs.max(axis=(1, 2), keepdims=True) + 1e-7)
    np.testing.assert_allclose(gradcam(CamModel(model, "target"), x, np.array(cls))[0].numpy(),
                               norm, atol=1e-4)


def test_layercam_matches_tf_keras_vis_on_a_keras_application_with_its_own_head():
    """LayerCAM (rule "layercam") against tf-keras-vis' Layercam at an inner layer of Keras'
    MobileNetV2 with its own linear 3-class head, unnormalised at the layer's grid; and explain's
    maps are those, max-normalised and resized; a nested backbone gives its flat twin's maps."""
    tkv = pytest.importorskip("tf_keras_vis.layercam")
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore
    keras.utils.set_random_seed(1)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                           classes=3, classifier_activation=None)
    x = np.random.default_rng(2).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    cls = [0, 2, 1]
    layer = "block_6_expand_relu"
    try:
        theirs = tkv.Layercam(model, model_modifier=ReplaceToLinear(), clone=True)(
            CategoricalScore(cls), x, penultimate_layer=layer, seek_penultimate_conv_layer=False,
            normalize_cam=False, expand_cam=False)
    except Exception as exc:  # tf-keras-vis predates Keras 3 in places
        pytest.skip(f"tf-keras-vis cannot run this Keras model: {exc}")
    theirs = np.asarray(theirs)
    ours = gradcam(CamModel(model, layer), x, np.array(cls), normalise=False,
                   rule="layercam")[0].numpy()
    assert theirs.max() > 0 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * theirs.max())
    grad_cam = gradcam(CamModel(model, layer), x, np.array(cls), normalise=False)[0].numpy()
    assert not np.allclose(grad_cam, theirs, atol=1e-3 * theirs.max())   # a different map
    e = explain(model, x, layer=layer, class_index=cls, rule="layercam")
    want = tf.image.resize((theirs / theirs.max(axis=(1, 2), keepdims=True))[..., None],
                           (32, 32))[..., 0].numpy()
    np.testing.assert_allclose(e.heatmaps, want, atol=1e-4)
    # transfer-learning shape: the headless application nested as a sub-model, then a head;
    # the flat twin calls the same layers in one graph
    base = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                          input_shape=(32, 32, 3))
    pool, head = keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)
    inputs = keras.Input((32, 32, 3))
    nested = keras.Model(inputs, head(pool(base(inputs))))
    flat = keras.Model(base.input, head(pool(base.output)))
    np.testing.assert_allclose(
        explain(nested, x, layer=layer, class_index=cls, rule="layercam").heatmaps,
        explain(flat, x, layer=layer, class_index=cls, rule="layercam").heatmaps, atol=1e-5)
    with pytest.raises(ValueError, match="unknown saliency rule"):
        explain(model, x, layer=layer, rule="layer-cam")


def test_second_order_gradient_matches_finite_differences():
    model = tiny_classifier(dtype="float64")
    cam_model = CamModel(model, "target")
    x = tf.constant(_images(2, dtype=np.float64))
    cls = tf.constant([1, 0])
    mask = tf.constant(np.random.default_rng(3).uniform(0, 1, (2, 16, 16)))
    kernel = model.layers[1].kernel  # the first conv: upstream of the target, so only the
    # CAM's dependence through activations AND channel weights reaches it

    def loss():
        cam = gradcam(cam_model, x, cls, second_order=True)[0]
        return tf.reduce_mean(relevance_loss(cam, mask))

    with tf.GradientTape() as tape:
        value = loss()
    analytic = tape.gradient(value, kernel).numpy()
    with tf.GradientTape() as tape:
        first = tf.reduce_mean(relevance_loss(gradcam(cam_model, x, cls, second_order=False)[0], mask))
    first_order = tape.gradient(first, kernel).numpy()
    rng = np.random.default_rng(0)
    original = kernel.numpy()
    eps = 1e-6
    for _ in range(6):
        idx = tuple(rng.integers(0, s) for s in original.shape)
        for sign, store in ((1, "plus"), (-1, "minus")):
            bumped = original.copy()
            bumped[idx] += sign * eps
            kernel.assign(bumped)
            if store == "plus":
                plus = float(loss())
            else:
                minus = float(loss())
        kernel.assign(original)
        numeric = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(analytic[idx], numeric, rtol=1e-4, atol=1e-8)
    # the exact mode really differs from treating the channel weights as constants
    assert np.abs(analytic - first_order).max() > 1e-3 * np.abs(analytic).max()


def test_all_zero_cam_has_no_nan():
    model = tiny_classifier()
    for w in model.get_layer("target").weights:
        w.assign(tf.zeros_like(w))
    cam = gradcam(CamModel(model, "target"), _images(), np.array([1, 0, 1]))[0].numpy()
    assert np.isfinite(cam).all() and cam.max() == 0


def test_explain_any_keras_classifier_softmax_dense_head():
    model = tiny_classifier(units=3, final="dense")
    x = _images(4)
    e = explain(model, x, layer="target")
    assert e.probabilities.shape == (4, 3) and e.heatmaps.shape == (4, 16, 16)
    np.testing.assert_allclose(e.probabilities, model(x).numpy(), atol=1e-5)
    np.testing.assert_array_equal(e.class_index, model(x).numpy().argmax(1))
    assert e.heatmaps.min() >= 0 and e.heatmaps.max() <= 1
    assert np.isclose(e.heatmaps.reshape(4, -1).max(1), 1, atol=0.05).any()


def test_explain_binary_probabilities_and_class_list():
    model = tiny_classifier()
    x = _images(3)
    e = explain(model, x, layer="target", class_index=[0, 1, 1])
    p = model(x).numpy()[:, 0]
    np.testing.assert_allclose(e.probabilities, np.stack([1 - p, p], 1), atol=1e-5)
    assert list(e.class_index) == [0, 1, 1] and e.layer == "target"
    with pytest.raises(ValueError, match="class_index"):
        explain(model, x, class_index=5)


def test_explain_opens_a_nested_backbone_like_transfer_learning_code_builds_it():
    from gfsr_tf.saliency import explain
    # the usual transfer-learning shape: base = keras.applications.X(include_top=False);
    # x = base(inputs); head...  The flat twin calls the same layers (shared weights) in one graph.
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    pool = keras.layers.GlobalAveragePooling2D()
    head = keras.layers.Dense(3, activation="softmax")
    inputs = keras.Input((32, 32, 3))
    nested = keras.Model(inputs, head(pool(base(inputs))))
    flat = keras.Model(base.input, head(pool(base.output)))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    layer = "block_13_expand_relu"  # inside the nested base
    ours = explain(nested, x, layer=layer, class_index=[0, 1, 2])
    reference = explain(flat, x, layer=layer, class_index=[0, 1, 2])
    np.testing.assert_allclose(ours.heatmaps, reference.heatmaps, atol=1e-5)
    np.testing.assert_allclose(ours.probabilities, nested.predict(x, verbose=0), rtol=1e-5)
    assert explain(nested, x).heatmaps.shape == (3, 32, 32)  # default: the base's 4-D output
    with pytest.raises(ValueError, match="not in model"):
        explain(nested, x, layer="no_such_layer")


def test_a_cam_head_makes_the_last_stage_grad_cam_an_exact_decomposition_of_the_logit():
    """model.pooling "avg", dense_units 0, dropout 0 (a CAM head, Zhou et al. 2016): Grad-CAM
    before its ReLU at the last stage sums over its cells to the logit minus the head's bias
    (the channel weights are w_c / HW); at conv3, where the goals read the map, it does not."""
    from gfsr_tf.config import ModelConfig
    from gfsr_tf.models import build_classifier
    from gfsr_tf.saliency.gradcam import gradcam_before_relu, score_gradients
    model = build_classifier(2, (64, 64, 3), weights=None, seed=0, pooling="avg",
                             dense_units=0, dropout=0.0)
    assert [layer.name for layer in model.layers[-3:]] == ["global_avg_pool", "logits",
                                                           "probabilities"]
    x = tf.constant(_images(3, 64) * 50)
    bias = float(model.get_layer("logits").bias.numpy()[0])
    sums = {}
    for layer in ("conv5_block3_out", "conv3_block4_out"):
        a, logits, g = score_gradients(CamModel(model, layer), x, np.ones(3, np.int32))
        sums[layer] = gradcam_before_relu(a, g).numpy().sum((1, 2))
    z = logits.numpy()[:, 0]
    np.testing.assert_allclose(sums["conv5_block3_out"], z - bias, rtol=1e-4,
                               atol=1e-5 * np.abs(z).max())
    assert not np.allclose(sums["conv3_block4_out"], z - bias, rtol=1e-2)
    with pytest.raises(ValueError, match="pooling must be max or avg"):
        ModelConfig(pooling="mean")
    with pytest.raises(ValueError, match="dense_units must be >= 0"):
        ModelConfig(dense_units=-1)
