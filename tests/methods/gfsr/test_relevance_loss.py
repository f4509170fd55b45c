import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.losses import input_gradient_penalty, mask_to_grid, relevance_loss


def test_relevance_loss_against_hand_computation():
    cam = np.array([[[1.0, 0.5], [0.0, 0.25]]], np.float32)        # (1, 2, 2)
    mask = np.array([[[1.0, 1.0], [0.0, 0.5]]], np.float32)
    # diff = [0, -0.5, 0, -0.25]: MAE = 0.75/4, MSE = (0.25 + 0.0625)/4
    # focal(gamma=2) = mean(m (1-cam)^2) = (0 + 0.25 + 0 + 0.5*0.5625)/4
    mae, mse, focal = 0.1875, 0.078125, (0.25 + 0.28125) / 4
    got = relevance_loss(cam, mask, alpha=0.3, beta=2.0, gamma=2.0).numpy()
    np.testing.assert_allclose(got, [0.3 * mae + 0.7 * mse + 2.0 * focal], rtol=1e-6)


def test_mask_area_resized_to_cam_grid():
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, :2, :2] = 1.0
    mask[0, 2, 3] = 1.0
    grid = mask_to_grid(mask, (2, 2)).numpy()[0]
    np.testing.assert_allclose(grid, [[1.0, 0.0], [0.0, 0.25]])


def test_zero_cam_and_empty_mask_are_finite():
    cam = tf.zeros((2, 3, 3))
    mask = tf.zeros((2, 6, 6))
    assert np.all(np.isfinite(relevance_loss(cam, mask).numpy()))
    np.testing.assert_allclose(relevance_loss(cam, mask).numpy(), 0.0)


def test_input_gradient_penalty_is_outside_energy_fraction():
    g = np.zeros((1, 2, 2, 3), np.float32)
    g[0, 0, 0] = [1, 0, 0]      # energy 1, outside
    g[0, 1, 1] = [0, 2, 0]      # energy 4, inside
    mask = np.array([[[0, 1], [1, 1]]], np.float32)
    np.testing.assert_allclose(input_gradient_penalty(g, mask).numpy(), [1 / 5], rtol=1e-5)
    assert np.isfinite(input_gradient_penalty(np.zeros_like(g), mask).numpy()).all()


def test_mask_to_grid_pools_like_area_resize():
    import tensorflow as tf
    from gfsr_tf.losses.relevance import mask_to_grid
    mask = np.random.default_rng(0).random((2, 64, 48)).astype(np.float32)
    for grid in ((8, 6), (16, 12), (10, 10)):  # integer factors pool; 10x10 falls back
        expected = tf.image.resize(mask[..., None], grid, method="area")[..., 0].numpy()
        np.testing.assert_allclose(mask_to_grid(tf.constant(mask), grid).numpy(), expected,
                                   atol=1e-6)
    # hand-worked 2x2 block mean
    np.testing.assert_allclose(mask_to_grid(tf.constant([[[1., 0.], [0., 0.]]]), (1, 1)), [[[0.25]]])


def test_relevance_and_decision_terms_ramp_on_their_own_schedules():
    """warm-up 2, ramp 2, consistency delay 1: the relevance loss rises over epochs 3-4, the
    decision constraint one epoch later (hand-written schedule)."""
    import keras
    from conftest import tiny_classifier
    from gfsr_tf.methods.gfsr.config import RelevanceConfig
    from gfsr_tf.methods.gfsr.step import GfsrStep
    config = RelevanceConfig(weight=2.0, consistency_weight=0.1, warmup_epochs=2, ramp_epochs=2,
                             consistency_delay_epochs=1)
    step = GfsrStep(tiny_classifier(), keras.optimizers.Adam(), config=config,
                    target_layer="target")
    logged = [step.on_epoch(e) for e in range(1, 7)]
    assert [r["lambda"] for r in logged] == [0, 0, 1.0, 2.0, 2.0, 2.0]
    assert [round(r["consistency_weight"], 6) for r in logged] == [0, 0, 0, 0.05, 0.1, 0.1]
    with pytest.raises(ValueError, match="consistency_delay_epochs must be >= 0"):
        RelevanceConfig(consistency_delay_epochs=-1)
