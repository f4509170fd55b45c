"""The shortcut study's machinery: the documented behaviour of the Grad-CAM the GFSR step trains
(BatchNorm's batch-sum identity, dead cells), the extensions' losses against hand computations,
the wrong-mask control and checkpoint selection without the correlated validation set."""
import functools

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_classifier
from gfsr_tf.config import BenchmarkConfig, TrainConfig
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.guidance.masks import random_blobs, relevance_masks
from gfsr_tf.losses import (consistency_penalty, counterfactual_batch, dilate,
                            outside_attribution)
from gfsr_tf.methods.gfsr import GfsrStep, RelevanceConfig
from gfsr_tf.models import CamModel, build_classifier
from gfsr_tf.preprocessing import preprocess
from gfsr_tf.saliency.gradcam import gradcam, live_cells, score_gradients
from gfsr_tf.training import Trainer


@pytest.fixture(scope="module")
def resnet_gradients():
    """dS/dA at conv2_block3_out of a from-scratch ResNet50 (32 px, 4 images), in training and
    inference mode."""
    data = make_split(BenchmarkConfig(image_size=32), "train", 4)
    model = build_classifier(2, (32, 32, 3), weights=None, seed=0)
    cam_model = CamModel(model, "conv2_block3_out")
    x = preprocess(data.images)
    labels = tf.constant(data.labels.astype(np.int32))
    return {mode: score_gradients(cam_model, x, labels, training=mode == "training")[2].numpy()
            for mode in ("training", "inference")}


def test_training_mode_gradcam_weights_sum_to_zero_over_the_batch(resnet_gradients):
    """Every consumer of a ResNet stage output is conv -> BN: in training mode each channel's
    Grad-CAM weight (spatial-mean gradient) sums to zero over the batch; in inference mode not."""
    train_w = resnet_gradients["training"].mean(axis=(1, 2))          # (N, C)
    infer_w = resnet_gradients["inference"].mean(axis=(1, 2))
    scale = np.abs(train_w).max()
    assert scale > 0
    assert np.abs(train_w.sum(0)).max() < 1e-4 * scale * len(train_w)
    # inference mode: the same sums are of the order of the weights themselves
    assert np.abs(infer_w.sum(0)).max() > 0.1 * np.abs(infer_w).max()


def test_three_quarters_of_a_stage_output_are_dead_cells(resnet_gradients):
    for grads in resnet_gradients.values():
        assert np.all(grads[:, 1::2, :, :] == 0) and np.all(grads[:, :, 1::2, :] == 0)
        live = live_cells(tf.constant(grads)).numpy()
        assert live.shape[1:3] == (4, 4) and np.count_nonzero(live) > 0.9 * live.size


def test_live_cell_cam_is_the_cam_of_the_sub_grid():
    model = tiny_classifier(size=8)
    x = tf.random.stateless_uniform((2, 8, 8, 3), (1, 2))
    cam_model = CamModel(model, "target")
    cam_live, _, _ = gradcam(cam_model, x, [1, 0], cells="live")
    a, _, g = score_gradients(cam_model, x, [1, 0])
    a, g = a.numpy()[:, ::2, ::2], g.numpy()[:, ::2, ::2]
    ref = np.maximum(np.einsum("nhwc,nc->nhw", a, g.mean((1, 2))), 0)
    ref /= ref.max((1, 2), keepdims=True) + 1e-7
    np.testing.assert_allclose(cam_live.numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="cells"):
        gradcam(cam_model, x, [1, 0], cells="some")


def test_counterfactual_background_replaces_only_outside_the_dilated_mask():
    x = tf.reshape(tf.range(3 * 8 * 8, dtype=tf.float32), (3, 8, 8, 1))
    mask = np.zeros((3, 8, 8), np.float32)
    mask[:, 3:5, 3:5] = 0.9                                # a 2x2 block, dilated by 1 -> 4x4
    keep = np.zeros((3, 8, 8), bool)
    keep[:, 2:6, 2:6] = True
    np.testing.assert_array_equal(dilate(tf.constant(mask), 1).numpy(), keep.astype(np.float32))
    out = counterfactual_batch(x, tf.constant(mask), 1).numpy()[..., 0]
    xs = x.numpy()[..., 0]
    donors = np.roll(xs, 1, axis=0)                        # image i takes image i-1's background
    np.testing.assert_array_equal(out[keep], xs[keep])
    np.testing.assert_array_equal(out[~keep], donors[~keep])
    only_first = counterfactual_batch(x, tf.constant(mask), 1,
                                      tf.constant([True, False, False])).numpy()[..., 0]
    np.testing.assert_array_equal(only_first[1:], xs[1:])
    np.testing.assert_array_equal(only_first[0], out[0])


def test_outside_attribution_and_consistency_by_hand():
    a = tf.constant([[[[1.0], [2.0]], [[3.0], [4.0]]]])          # (1, 2, 2, 1)
    g = tf.constant([[[[1.0], [-1.0]], [[1.0], [-1.0]]]])
    mask = tf.constant([[[1.0, 0.0], [0.0, 0.0]]])
    # |g.A| = 1, 2, 3, 4: 9 of 10 outside the mask
    assert outside_attribution(a, g, mask).numpy() == pytest.approx([0.9])
    assert outside_attribution(tf.zeros_like(a), g, mask).numpy() == pytest.approx([0.0])
    z, z_cf = tf.constant([[1.0], [0.5]]), tf.constant([[3.0], [0.5]])
    np.testing.assert_allclose(consistency_penalty(z, z_cf).numpy(), [4.0, 0.0])


def _step(relevance, model):
    import keras
    return GfsrStep(model, keras.optimizers.SGD(0.0), config=relevance, target_layer="target",
                    preprocessor="none")


def test_consistency_step_loss_equals_the_hand_computation():
    """Extension (b): CE(x) + CE(x~) + w (z(x) - z(x~))^2, x~ = x with the next image's background
    outside the dilated mask; and (d) adds the paper's relevance term on top."""
    data = make_split(BenchmarkConfig(image_size=16), "train", 4)
    masks = relevance_masks(data)
    images = np.repeat(data.images, 3, -1).astype(np.float32)
    labels = data.labels.astype(np.int32)
    model = tiny_classifier(size=16)
    dilation = int(round(0.06 * 16))
    keep = dilate(tf.constant(masks), dilation).numpy()[..., None]
    x_cf = keep * images + (1 - keep) * np.roll(images, 1, axis=0)
    logits_of = tf.keras.Model(model.inputs, model.get_layer("logits").output)
    zx, zc = logits_of(images).numpy()[:, 0], logits_of(x_cf).numpy()[:, 0]

    def bce(z):
        return np.mean(np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z))))
    w = 0.7
    expected_ce = bce(zx) + bce(zc)
    expected = expected_ce + w * np.mean((zx - zc) ** 2)
    batch = {"image": tf.constant(images), "label": tf.constant(labels),
             "mask": tf.constant(masks)}
    step = _step(RelevanceConfig(weight=0.0, consistency_weight=w), model)
    step.on.assign(1.0)
    step.on_decision.assign(1.0)
    out = step(batch)
    assert out["ce"].numpy() == pytest.approx(expected_ce, rel=1e-5)
    assert out["loss"].numpy() == pytest.approx(expected, rel=1e-5)
    # (d): the paper's term is added with its weight, on the CAMs of x and x~
    paper = _step(RelevanceConfig(weight=2.0, consistency_weight=w, warmup_epochs=1), model)
    paper.on.assign(1.0)
    paper.on_decision.assign(1.0)
    out = paper(batch)
    assert out["relevance"].numpy() > 0
    assert out["loss"].numpy() == pytest.approx(
        expected + 2.0 * out["relevance"].numpy(), rel=1e-5)
    # during a warm-up only the plain images' CE counts
    paper.on.assign(0.0)
    paper.on_decision.assign(0.0)
    assert paper(batch)["loss"].numpy() == pytest.approx(bce(zx), rel=1e-5)
    # (a) on every image: the counterfactuals replace the images once the warm-up is over
    replace = _step(RelevanceConfig(weight=0.0, counterfactual_rate=1.0), model)
    assert replace(batch)["loss"].numpy() == pytest.approx(bce(zx), rel=1e-5)
    replace.on.assign(1.0)
    replace.on_decision.assign(1.0)
    assert replace(batch)["loss"].numpy() == pytest.approx(bce(zc), rel=1e-5)


def test_extensions_train_with_finite_gradients_and_cannot_be_fused(tmp_path):
    data = make_split(BenchmarkConfig(image_size=16), "train", 4)
    batch = {"image": tf.constant(data.images), "label": tf.constant(data.labels.astype(np.int32)),
             "mask": tf.constant(relevance_masks(data))}
    for options in ({"weight": 0.0, "counterfactual_rate": 0.5},
                    {"weight": 0.0, "outside_attribution_weight": 1.0},
                    {"cam_mode": "inference", "cam_cells": "live"}):
        model = tiny_classifier(size=16)
        before = [v.numpy().copy() for v in model.trainable_variables]
        step = functools.partial(GfsrStep, config=RelevanceConfig(**options),
                                 target_layer="target")
        trainer = Trainer(model, tmp_path / "_".join(options), step,
                          train=TrainConfig(batch_size=4), verbose=0)
        trainer.step.on.assign(1.0)
        trainer.step.on_decision.assign(1.0)
        out = trainer.train_step(batch)
        assert all(np.isfinite(v.numpy()) for v in out.values())
        assert any(not np.array_equal(a, b.numpy())
                   for a, b in zip(before, model.trainable_variables)), options
    with pytest.raises(ValueError, match="fused"):
        RelevanceConfig(second_order=False, fused=True, consistency_weight=1.0)
    with pytest.raises(ValueError, match="counterfactual_rate"):
        RelevanceConfig(counterfactual_rate=1.5)
    with pytest.raises(ValueError, match="cam_mode"):
        RelevanceConfig(cam_mode="eval")


def test_random_blobs_cover_the_lung_area_elsewhere():
    data = make_split(BenchmarkConfig(image_size=32), "train", 6)
    lungs = data.lungs > 0.5
    blobs = random_blobs(lungs.reshape(6, -1).mean(1), (32, 32))
    assert np.abs(blobs.reshape(6, -1).sum(1) - lungs.reshape(6, -1).sum(1)).max() <= 2
    overlap = (blobs * lungs).sum() / lungs.sum()
    assert overlap < 0.6                       # not the lungs (chance overlap is ~ the lung area)
    np.testing.assert_array_equal(blobs, random_blobs(lungs.reshape(6, -1).mean(1), (32, 32)))
    masks = relevance_masks(data, "random_blobs", blur_sigma=0)
    np.testing.assert_array_equal(masks, blobs)


def test_checkpoint_selection_by_last_epoch_and_twin_validation(tmp_path):
    cfg = BenchmarkConfig(image_size=16)
    train, val = make_split(cfg, "train", 8), make_split(cfg, "val", 6)
    step = functools.partial(GfsrStep, config=RelevanceConfig(weight=0.0), target_layer="target")
    trainer = Trainer(tiny_classifier(size=16), tmp_path / "last", step, verbose=0,
                      train=TrainConfig(epochs=3, batch_size=4, monitor="last"))
    history = trainer.fit(train, val)
    assert all(h.get("best") for h in history)            # every epoch replaces the model
    assert {"val_twin_auc", "val_twin_accuracy"} <= set(history[0])
    with pytest.raises(ValueError, match="monitor"):
        TrainConfig(monitor="val_twin_loss")     # only val_loss is minimised
    bad = Trainer(tiny_classifier(size=16), tmp_path / "bad", step, verbose=0,
                  train=TrainConfig(epochs=1, batch_size=4, monitor="val_twin_auc"))
    no_twins = make_split(cfg, "val", 6)
    no_twins.twins = None
    with pytest.raises(ValueError, match="not a validation figure"):
        bad.fit(train, no_twins)


def test_warm_up_trains_on_the_plain_batch_then_on_the_stacked_one_traced(tmp_path):
    """ext-b with a warm-up: one traced step serves both phases (the batch doubles only once
    the guidance is on), so warm-up epochs cost what plain training costs."""
    data = make_split(BenchmarkConfig(image_size=16), "train", 4)
    batch = {"image": tf.constant(data.images), "label": tf.constant(data.labels.astype(np.int32)),
             "mask": tf.constant(relevance_masks(data))}
    step = functools.partial(GfsrStep, target_layer="target", config=RelevanceConfig(
        weight=0.0, consistency_weight=1.0, warmup_epochs=1))
    trainer = Trainer(tiny_classifier(size=16), tmp_path / "w", step,
                      train=TrainConfig(batch_size=4), verbose=0)
    warm = trainer.train_step(batch)                       # on = 0 before the first epoch
    trainer.step.on.assign(1.0)
    trainer.step.on_decision.assign(1.0)
    guided = trainer.train_step(batch)
    assert warm["consistency"].numpy() == 0 and guided["consistency"].numpy() > 0
    assert guided["ce"].numpy() > 1.5 * warm["ce"].numpy()  # CE(x) + CE(x~) vs CE(x)
    assert trainer.train_step.experimental_get_tracing_count() == 1


def test_warm_up_then_linear_ramp_of_the_guidance_gate():
    step = _step(RelevanceConfig(weight=1.0, warmup_epochs=2, ramp_epochs=4),
                 tiny_classifier(size=8))
    gates = []
    for epoch in range(1, 9):
        step.on_epoch(epoch)
        gates.append(float(step.on.numpy()))
    assert gates == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    from gfsr_tf.methods.gfsr.describe import gfsr_configuration
    line = gfsr_configuration({"weight": 0.0, "consistency_weight": 0.1, "warmup_epochs": 8,
                               "ramp_epochs": 4}, "conv3_block4_out")
    assert line.startswith("extension beyond the paper: logit consistency")
    assert "warmup_epochs 8 (paper: 0)" in line and "ramp_epochs 4" in line
