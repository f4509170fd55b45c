"""RRR (Ross et al. 2017) and RRR-GradCAM: the loss against central finite differences and a hand
computation on a tiny network, and a few steps that lower the right-reasons term."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.methods import get_method
from gfsr_tf.methods.rrr import (RRRConfig, RRRStep, gradcam_penalty, input_gradient_penalty,
                                 summed_log_probabilities)
from gfsr_tf.saliency.cam_model import CamModel
from gradient_checks import SIZE, evidence_batch, tiny_classifier

def _numeric_input_gradient(model, x, eps=1e-5):
    """Central differences of Σ_k log p_k (a float64 network), per input."""
    def f(v):
        p = model(v[None], training=False).numpy()[0]
        p = np.concatenate([p, 1 - p]) if p.shape[-1] == 1 else p
        return np.log(p).sum()
    g = np.zeros_like(x, np.float64)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


@pytest.mark.parametrize("units", [1, 2])
def test_the_right_reasons_term_is_ross_et_al_s_against_finite_differences(units):
    model = tiny_classifier(units, dtype="float64")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2, SIZE, SIZE, 2))
    mask = np.zeros((2, SIZE, SIZE))
    mask[:, 2:6, 1:5] = 1
    cam_model = CamModel(model, "features")
    got = input_gradient_penalty(cam_model, tf.constant(x), tf.constant(mask)).numpy()
    for n in range(2):
        g = _numeric_input_gradient(model, x[n])
        expected = np.sum(((1 - mask[n])[..., None] * g) ** 2)
        assert got[n] == pytest.approx(expected, rel=1e-6)
    # Σ_k log p_k for a sigmoid head counts both outcomes
    z = tf.constant([[0.3], [-2.0]])
    np.testing.assert_allclose(summed_log_probabilities(z).numpy(),
                               np.log(1 / (1 + np.exp(-z.numpy()[:, 0])))
                               + np.log(1 / (1 + np.exp(z.numpy()[:, 0]))), rtol=1e-6)


def test_one_step_minimises_ce_plus_lambda_times_penalty_plus_l2_by_hand():
    model = tiny_classifier(2)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (4, SIZE, SIZE, 2)).astype(np.float32)
    labels = np.array([0, 1, 1, 0])
    mask = np.zeros((4, SIZE, SIZE), np.float32)
    mask[:, :, :4] = 1
    config = RRRConfig(weight=3.0, l2=0.01)
    step = RRRStep(model, keras.optimizers.SGD(0.0), config=config, target_layer="features",
                   preprocessor="none")
    out = step({"image": tf.constant(images), "label": tf.constant(labels),
                "mask": tf.constant(mask)})
    p = model(images, training=True).numpy()
    ce = -np.mean(np.log(p[np.arange(4), labels]))
    penalty = input_gradient_penalty(step.cam_model, tf.constant(images),
                                     tf.constant(mask)).numpy().mean()
    decay = sum(float(np.sum(v.numpy() ** 2)) for v in model.trainable_variables
                if "kernel" in v.path)
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(out["right_reasons"]) == pytest.approx(penalty, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(ce + 3.0 * penalty + 0.01 * decay, rel=1e-5)


def test_training_lowers_the_gradient_outside_the_mask_and_the_gradcam_variant_runs():
    """Against the same steps with λ1 = 0: Σ_k log p_k's gradient vanishes at p = 1/2 and grows
    as the model grows confident, so the reference is the unconstrained model, not step 0."""
    batch = evidence_batch()
    outside = {}
    for weight in (0.0, 100.0):
        model = tiny_classifier(1, seed=2)
        step = RRRStep(model, keras.optimizers.Adam(1e-2), config=RRRConfig(weight=weight, l2=0.0),
                       target_layer="features", preprocessor="none")
        for _ in range(40):
            out = step(batch)
        outside[weight] = float(tf.reduce_mean(input_gradient_penalty(
            step.cam_model, batch["image"], batch["mask"])))
        assert float(out["acc"]) > 0.9
    assert outside[100.0] < 0.2 * outside[0.0], outside
    cam = gradcam_penalty(CamModel(model, "features"), batch["image"], batch["mask"],
                          batch["label"]).numpy()
    assert cam.shape == (32,) and np.all(np.isfinite(cam)) and np.all(cam >= 0)


def test_both_names_are_registered_with_their_explanation_and_options_are_checked():
    assert get_method("rrr").make_config().explanation == "input_gradient"
    assert get_method("rrr_gradcam").make_config().explanation == "gradcam"
    with pytest.raises(ValueError, match="rrr explanation must be"):
        get_method("rrr").make_config({"explanation": "lime"})
    with pytest.raises(ValueError, match="unknown rrr option"):
        get_method("rrr").make_config({"lambda": 1})
