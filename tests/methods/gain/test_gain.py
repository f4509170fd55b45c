"""GAIN (Li et al. 2018): the attention-mining and external-supervision terms against a hand
computation, their gradient through the Grad-CAM against central finite differences, and a step
whose loss is CE + α·L_am + ω·L_e."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.methods import get_method
from gfsr_tf.methods.gain import GainConfig, GainStep, gain_terms, true_class_probability
from gfsr_tf.saliency.cam_model import CamModel
from gfsr_tf.saliency.gradcam import gradcam
from gradient_checks import SIZE, assert_matches_finite_differences, tiny_classifier

def test_the_terms_by_hand():
    """A = Grad-CAM (same grid as the image here: no upsampling), T(A) = σ(10 (A − 0.5)),
    L_am = the true-class probability of x − T(A)·x, L_e = mean (A − H)²."""
    model = tiny_classifier()
    cam_model = CamModel(model, "features")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, SIZE, SIZE, 2)).astype(np.float32)
    labels = np.array([0, 1, 1])
    mask = rng.uniform(size=(3, SIZE, SIZE)).astype(np.float32)
    mining, external, attention = gain_terms(cam_model, tf.constant(x), tf.constant(labels),
                                             tf.constant(mask), GainConfig())
    cam = gradcam(cam_model, tf.constant(x), tf.constant(labels))[0].numpy()
    np.testing.assert_allclose(attention.numpy(), cam, rtol=1e-5, atol=1e-6)
    soft = 1 / (1 + np.exp(-10 * (cam - 0.5)))
    p = model(x - soft[..., None] * x).numpy()[:, 0]
    np.testing.assert_allclose(mining.numpy(), np.where(labels == 1, p, 1 - p), rtol=1e-5)
    np.testing.assert_allclose(external.numpy(), ((cam - mask) ** 2).mean((1, 2)), rtol=1e-5)
    # softmax heads: the true class's probability
    np.testing.assert_allclose(true_class_probability(tf.constant([[0.0, np.log(3.0)]]),
                                                      tf.constant([1])).numpy(), [0.75],
                               rtol=1e-6)


def test_the_gain_loss_gradient_matches_finite_differences():
    model = tiny_classifier(dtype="float64")
    cam_model = CamModel(model, "features")
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, SIZE, SIZE, 2)))
    labels, mask = tf.constant([0, 1]), tf.constant(rng.uniform(size=(2, SIZE, SIZE)))

    def loss():
        mining, external, _ = gain_terms(cam_model, x, labels, mask, GainConfig())
        return tf.reduce_mean(mining) + 10.0 * tf.reduce_mean(external)

    value, _ = assert_matches_finite_differences(
        loss, model.get_layer("features").kernel, [(0, 0, 0, 0), (1, 2, 1, 2), (2, 1, 0, 1)])
    assert np.isfinite(value)


def test_one_step_reports_ce_plus_alpha_mining_plus_omega_external():
    model = tiny_classifier()
    rng = np.random.default_rng(2)
    images = rng.normal(size=(4, SIZE, SIZE, 2)).astype(np.float32)
    labels, mask = np.array([0, 1, 1, 0]), rng.uniform(size=(4, SIZE, SIZE)).astype(np.float32)
    step = GainStep(model, keras.optimizers.SGD(0.0), config=GainConfig(weight=2.0,
                    external_weight=5.0), target_layer="features", preprocessor="none")
    out = step({"image": tf.constant(images), "label": tf.constant(labels),
                "mask": tf.constant(mask)})
    p = model(images).numpy()[:, 0]
    ce = -np.mean(np.log(np.where(labels == 1, p, 1 - p)))
    mining, external, _ = gain_terms(step.cam_model, tf.constant(images), tf.constant(labels),
                                     tf.constant(mask), GainConfig())
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(
        ce + 2.0 * float(tf.reduce_mean(mining)) + 5.0 * float(tf.reduce_mean(external)),
        rel=1e-5)


def test_gain_is_registered_and_its_options_are_checked():
    assert get_method("gain").make_config().external_weight == 10.0
    with pytest.raises(ValueError, match="sigma in"):
        get_method("gain").make_config({"sigma": 1.0})
