"""Guided backpropagation, DeconvNet and the plain gradient as differentiable heatmap generators
(saliency.input_gradients): hand-computed rules, tf-keras-vis's guided backprop, the swish rule,
the view leaving the model untouched, and the double backward against finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.saliency import explain_posthoc
from gfsr_tf.saliency.input_gradients import rule_gradient, rule_maps, rule_view


def _hand_network():
    """x -> relu -> W2 (no bias) -> relu -> [2, 1] (no bias): s = 2 relu(h2_1) + relu(h2_2)."""
    inputs = keras.Input((2,))
    a1 = keras.layers.Activation("relu")(inputs)
    h2 = keras.layers.Dense(2, use_bias=False, name="w2")(a1)
    a2 = keras.layers.Activation("relu")(h2)
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False, name="out")(a2))
    model.get_layer("w2").set_weights([np.array([[1.0, -1.0], [-1.0, 1.0]])])
    model.get_layer("out").set_weights([np.array([[2.0], [1.0]])])
    return model


@pytest.mark.parametrize("rule,expected", [("gradient", (-1, 1)), ("guided_backprop", (0, 1)),
                                           ("deconvnet", (1, 0))])
def test_backward_rules_on_the_hand_network(rule, expected):
    # x = (1, 2): h2 = (-1, 1), ds/dh2 = (2, 1) masked by relu'(h2) = (0, 1) (plain, guided) or
    # only rectified (DeconvNet: (2, 1) -> W2^T (2, 1) = (1, -1) -> rectified (1, 0))
    grad = rule_gradient(_hand_network(), tf.constant([[1.0, 2.0]]), rule).numpy()
    np.testing.assert_allclose(grad[0], expected, atol=1e-7)


def _conv_net(activation="relu"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation=activation, padding="same")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Activation(activation)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3)(x)
    return keras.Model(inputs, keras.layers.Activation("softmax")(x))


def test_guided_backprop_equals_tf_keras_vis():
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import GuidedBackpropagation, ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore
    net = _conv_net()
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    ours = rule_gradient(net, tf.constant(x), "guided_backprop", np.array([0, 2])).numpy()
    saliency = Saliency(net, model_modifier=[ReplaceToLinear(), GuidedBackpropagation()],
                        clone=True)
    ref = np.asarray(saliency(CategoricalScore([0, 2]), x, keepdims=True, normalize_map=False,
                              gradient_modifier=lambda g: g))
    assert np.abs(ours).max() > 0
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # and the map is |sum over channels| / max, per image
    maps = rule_maps(net, x, "guided_backprop", np.array([0, 2])).numpy()
    g = np.abs(ours.sum(-1))
    np.testing.assert_allclose(maps, g / (g.max((1, 2), keepdims=True) + 1e-7), atol=1e-6)


def test_swish_is_guided_and_the_model_is_left_untouched():
    net = _conv_net("swish")
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32))
    before = net(x).numpy()
    plain = rule_gradient(net, x, "gradient").numpy()
    guided = rule_gradient(net, x, "guided_backprop").numpy()
    assert np.abs(plain - guided).max() > 1e-3          # the swish rule is not the gradient
    # outside the view the model is itself again: same outputs, same activations
    assert np.allclose(net(x).numpy(), before)
    assert net.layers[-1].activation is keras.activations.softmax
    assert all(not getattr(l.activation, "__name__", "").startswith("activation")
               for l in net.layers if hasattr(l, "activation"))


def test_a_model_without_guidable_activations_is_named():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="tanh", name="t")(inputs))
    with pytest.raises(ValueError, match="no guidable activation.*layers inspected: t"):
        with rule_view(model, "guided_backprop"):
            pass
    with pytest.raises(ValueError, match="unknown backward rule"):
        with rule_view(_conv_net(), "backwards"):
            pass


def test_an_all_zero_gradient_gives_a_zero_map():
    net = _conv_net()
    for w in net.layers[-2].weights:
        w.assign(tf.zeros_like(w))
    maps = rule_maps(net, np.ones((1, 16, 16, 3), np.float32), "deconvnet").numpy()
    assert np.isfinite(maps).all() and maps.max() == 0


def test_explain_posthoc_offers_the_generators_on_a_keras_application():
    # MobileNetV2's activations are ReLU6 layers: guided on (0, 6), with its own softmax head
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=3)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    for rule in ("guided_backprop", "deconvnet"):
        e = explain_posthoc(model, x, rule)
        assert e.heatmaps.shape == (2, 32, 32) and 0 <= e.heatmaps.min()
        assert 0 < e.heatmaps.max() <= 1
        grad = rule_gradient(model, tf.constant(x), rule).numpy()
        g = np.abs(grad.sum(-1))
        np.testing.assert_allclose(e.heatmaps, g / (g.max((1, 2), keepdims=True) + 1e-7),
                                   rtol=1e-4, atol=1e-9)
    assert model.layers[-1].activation is keras.activations.softmax      # restored


def test_the_map_loss_is_differentiable_and_matches_finite_differences():
    """Set 1's term BCE(logit(M~), gaze) w.r.t. one kernel entry of a tiny SiLU network."""
    tf.keras.backend.set_floatx("float64")
    try:
        keras.utils.set_random_seed(3)
        inputs = keras.Input((6, 6, 1), dtype="float64")
        x = keras.layers.Conv2D(3, 3, padding="same", activation="silu", dtype="float64",
                                name="c1")(inputs)
        x = keras.layers.Flatten(dtype="float64")(x)
        model = keras.Model(inputs, keras.layers.Dense(2, dtype="float64")(x))
    finally:
        tf.keras.backend.set_floatx("float32")
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(2, 6, 6, 1)))
    gaze = tf.constant(rng.random((2, 6, 6)))
    kernel = model.get_layer("c1").kernel

    def loss():
        grad = rule_gradient(model, images, "guided_backprop", np.array([0, 1]))
        g = tf.abs(tf.reduce_sum(grad, -1))
        m = tf.clip_by_value(g / (tf.reduce_max(g, [1, 2], keepdims=True) + 1e-7), 1e-6,
                             1 - 1e-6)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            gaze, tf.math.log(m / (1 - m))))
    from gradient_checks import assert_matches_finite_differences
    idx = (1, 1, 0, 2)
    _, analytic = assert_matches_finite_differences(loss, kernel, [idx], eps=1e-5, rel=1e-3,
                                                    abs=0)
    assert abs(analytic[idx]) > 1e-6


def test_a_model_saved_after_training_through_the_view_is_plain_keras(tmp_path):
    net = _conv_net("swish")
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32))
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step():      # a loss on the guided map, traced: what the model sets do
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(rule_maps(net, x, "guided_backprop", training=True))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
    step()
    net.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    names = {l.activation.__name__ for l in loaded.layers if hasattr(l, "activation")}
    assert names <= {"silu", "linear", "softmax"}, names
    np.testing.assert_allclose(loaded(x).numpy(), net(x).numpy(), atol=1e-6)
