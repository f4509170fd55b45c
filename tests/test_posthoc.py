"""Post-hoc explainers (tf-keras-vis, lime) behind `explain`'s call signature."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.saliency import explain_posthoc


def _patch_model(size=32):
    """conv 1x1 (ReLU, bias -0.5) -> global average -> one logit -> sigmoid. On images that are
    zero except for a bright top-left patch only the patch activates the conv, so the patch is
    the only evidence and every faithful explainer must point there."""
    inputs = keras.Input((size, size, 3))
    target = keras.layers.Conv2D(2, 1, activation="relu", name="target",
                                 kernel_initializer="ones",
                                 bias_initializer=keras.initializers.Constant(-0.5))(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(target)
    logit = keras.layers.Dense(1, kernel_initializer="ones",
                               bias_initializer=keras.initializers.Constant(-1.0))(pooled)
    return keras.Model(inputs, keras.layers.Activation("sigmoid", name="probabilities")(logit))


PATCH = (slice(2, 12), slice(3, 13))


def _inside_vs_outside(heat):
    inside = np.zeros(heat.shape[1:], bool)
    inside[PATCH] = True
    return heat[:, inside].mean(1) / np.maximum(heat[:, ~inside].mean(1), 1e-9)


@pytest.fixture(scope="module")
def images():
    x = np.zeros((2, 32, 32, 3), np.float32)
    x[:, PATCH[0], PATCH[1]] = np.random.default_rng(0).uniform(0.5, 1, (2, 10, 10, 3))
    return x


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "smoothgrad", "lime"])
def test_explainers_point_at_the_only_evidence(method, images):
    model = _patch_model()
    options = {"num_samples": 150, "n_segments": 16} if method == "lime" else {}
    exp = explain_posthoc(model, images, method, layer="target", class_index=1, **options)
    assert exp.heatmaps.shape == (2, 32, 32)
    assert exp.heatmaps.min() >= 0 and exp.heatmaps.max() <= 1
    assert (exp.class_index == 1).all()
    np.testing.assert_allclose(exp.probabilities[:, 1], model.predict(images, verbose=0)[:, 0],
                               rtol=1e-5)
    # the patch is 10% of the image; LIME's regression leaves small noise weights elsewhere
    assert (_inside_vs_outside(exp.heatmaps) > 5).all(), _inside_vs_outside(exp.heatmaps)
    peak = exp.heatmaps.reshape(2, -1).argmax(1)
    assert all(2 <= p // 32 < 12 and 3 <= p % 32 < 13 for p in peak)


def test_saliency_without_noise_is_the_normalised_input_gradient(images):
    model = _patch_model()
    exp = explain_posthoc(model, images, "smoothgrad", class_index=0, smooth_samples=0)
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model.layers[-2](model.layers[-3](model.get_layer("target")(x)))
        score = -logits[:, 0]                      # class 0 of a single-logit head
    grad = np.abs(tape.gradient(score, x).numpy()).max(-1)
    low, high = grad.min((1, 2), keepdims=True), grad.max((1, 2), keepdims=True)
    # tf-keras-vis adds a tiny epsilon to the normaliser
    np.testing.assert_allclose(exp.heatmaps, (grad - low) / (high - low), atol=1e-4)


def test_unknown_method_is_a_clear_error(images):
    with pytest.raises(ValueError, match="unknown explainer"):
        explain_posthoc(_patch_model(), images, "occlusion")
