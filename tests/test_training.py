import dataclasses
import functools
import json

import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.config import BenchmarkConfig, TrainConfig
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.guidance.masks import relevance_masks
from gfsr_tf.losses import relevance_loss
from gfsr_tf.methods.gfsr import GfsrStep, RelevanceConfig
from gfsr_tf.models import CamModel, build_classifier
from gfsr_tf.preprocessing import preprocess
from gfsr_tf.saliency import gradcam
from gfsr_tf.training import Trainer


def Gfsr(model, run_dir, *, train=TrainConfig(), relevance=RelevanceConfig(),
         target_layer="conv3_block4_out", verbose=0):
    """A Trainer running the GFSR step (what the study builds through the method registry)."""
    step = functools.partial(GfsrStep, config=relevance, target_layer=target_layer,
                             mixed_precision=train.mixed_precision)
    return Trainer(model, run_dir, step, train=train, verbose=verbose)

SIZE = 32


@pytest.fixture(scope="module")
def data():
    cfg = BenchmarkConfig(image_size=SIZE, seed=0)
    return make_split(cfg, "train", 8), make_split(cfg, "val", 4)


def _model(backbone="resnet50"):
    return build_classifier(2, (SIZE, SIZE, 3), weights=None, bn_momentum=0.9, seed=0,
                            backbone=backbone)


# The resume tests check the loop's bookkeeping (checkpoint, optimizer state, data order, dropout
# draws), which does not depend on the backbone: the small CNN keeps them fast.
_small = functools.partial(_model, "small_cnn")


# ResNet50's double backward (~14 s) with the slow set: the default suite's 10-minute budget
@pytest.mark.parametrize("backbone, after, before", [
    ("small_cnn", "small_conv4", "small_conv2"),
    pytest.param("resnet50", "conv4_block1_1_conv", "conv2_block1_1_conv",
                 marks=pytest.mark.slow)])
def test_exact_relevance_gradient_reaches_layers_after_the_target(data, backbone, after, before):
    train, _ = data
    model = _model(backbone)
    cam_model = CamModel(model, "conv3_block4_out")
    x = preprocess(train.images[:4])
    masks = relevance_masks(train.subset(range(4)))
    after = model.get_layer(after).kernel
    before = model.get_layer(before).kernel
    labels = tf.constant(train.labels[:4])
    grads = {}
    for exact in (True, False):
        @tf.function  # the GFSR step only ever runs traced (eager is ~3x the memory)
        def relevance_grads():
            with tf.GradientTape() as tape:
                cam = gradcam(cam_model, x, labels, training=True, second_order=exact)[0]
                loss = tf.reduce_mean(relevance_loss(cam, masks))
            # (UnconnectedGradients.ZERO fails on Keras 3 variables, whose dtype is a str)
            return tape.gradient(loss, [after, before])
        grads[exact] = [np.zeros(v.shape) if g is None else g.numpy()
                        for v, g in zip((after, before), relevance_grads())]
    for g in grads[True]:
        assert np.isfinite(g).all() and np.abs(g).max() > 0
    # first order: channel weights are constants, nothing after the target block is reached
    assert np.abs(grads[False][0]).max() == 0 and np.abs(grads[False][1]).max() > 0


@pytest.mark.slow  # ~20 s of ResNet50 double backward; test_method_contract[gfsr] and
# test_exact_relevance_gradient_reaches_layers_after_the_target[small_cnn] stay in the default
# suite
def test_two_step_gfsr_training_is_finite_and_moves_weights(data, tmp_path):
    train, val = data
    model = _model()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    trainer = Gfsr(model, tmp_path, train=TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2),
                      relevance=RelevanceConfig(weight=1.0), verbose=0)
    history = trainer.fit(train, val, {"mask": relevance_masks(train)})
    record = history[0]
    assert all(np.isfinite(v) for k, v in record.items() if isinstance(v, float))
    assert record["relevance"] > 0
    moved = [v.path for v in model.trainable_variables
             if not np.allclose(before[v.path], v.numpy())]
    assert any("conv5" in p for p in moved) and any("conv2" in p for p in moved)
    assert (tmp_path / "best.keras").exists() and (tmp_path / "metrics.jsonl").exists()


def test_baseline_lambda_zero_needs_no_masks(data, tmp_path):
    train, val = data
    history = Gfsr(_small(), tmp_path, train=TrainConfig(epochs=1, batch_size=4,
                                                           steps_per_epoch=1),
                      relevance=RelevanceConfig(weight=0.0), verbose=0).fit(train, val)
    assert history[0]["relevance"] == 0 and np.isfinite(history[0]["loss"])


def _interrupted_and_full(data, tmp_path, relevance):
    train, val = data
    masks = relevance_masks(train)
    cfg = dict(batch_size=4, steps_per_epoch=1)
    full = _small()
    Gfsr(full, tmp_path / "full", train=TrainConfig(epochs=2, **cfg), relevance=relevance,
            verbose=0).fit(train, val, {"mask": masks})
    Gfsr(_small(), tmp_path / "cut", train=TrainConfig(epochs=1, keep_checkpoints=True, **cfg),
         relevance=relevance).fit(train, val, {"mask": masks})  # "interrupted" after epoch 1
    resumed = _small()  # a fresh process: new model, same command
    history = Gfsr(resumed, tmp_path / "cut", train=TrainConfig(epochs=2, **cfg),
                      relevance=relevance, verbose=0).fit(train, val, {"mask": masks})
    assert [h["epoch"] for h in history] == [1, 2]
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    return full, resumed, preprocess(val.images)


def test_resume_after_interrupt_equals_uninterrupted_run_exactly(data, tmp_path):
    # baseline step: bit-deterministic, so checkpoint, optimizer state, data order and dropout
    # draws must all be restored exactly
    full, resumed, _ = _interrupted_and_full(data, tmp_path, RelevanceConfig(weight=0.0))
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_resumed_gfsr_run_stays_within_round_off_of_the_uninterrupted_one(data, tmp_path):
    # The exact GFSR step is deterministic only up to float round-off on CPU (measured: identical
    # loss, weight differences ~1e-8 after one step), and Adam turns round-off on mathematically-
    # zero gradients (conv biases feeding BatchNorm) into +-lr steps; so after two steps the runs
    # agree to a few learning-rate steps, not bit for bit (the baseline test above is exact).
    full, resumed, _ = _interrupted_and_full(data, tmp_path, RelevanceConfig(weight=1.0))
    fresh = _small()
    lr = TrainConfig().learning_rate
    moved = 0
    for a, b, c in zip(full.trainable_weights, resumed.trainable_weights, fresh.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=4 * lr, err_msg=a.path)  # 2 steps, +-lr each
        moved += not np.array_equal(b.numpy(), c.numpy())
    assert moved > len(fresh.trainable_weights) // 2  # it trained (exact resume: baseline test)


def test_guided_training_without_masks_is_a_clear_error(data, tmp_path):
    train, val = data
    with pytest.raises(ValueError, match="needs relevance masks"):
        Gfsr(_model(), tmp_path, relevance=RelevanceConfig(weight=1.0), verbose=0).fit(train, val)


def test_fused_first_order_gradients_match_the_unfused_step():
    """The fused step (CAM from the CE backward) = the plain first-order GFSR gradient, with
    BatchNorm-free / inference-mode layers where the per-image identity is exact."""
    from conftest import tiny_classifier
    from gfsr_tf.losses import relevance_loss
    from gfsr_tf.models import CamModel
    from gfsr_tf.saliency import gradcam
    from gfsr_tf.methods.gfsr.fused import fused_gradients, split_at
    model = tiny_classifier(size=16)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 50, (4, 16, 16, 3)).astype(np.float32))
    labels = tf.constant([1, 0, 1, 0])
    masks = tf.constant(rng.uniform(0, 1, (4, 16, 16)).astype(np.float32))
    cfg = RelevanceConfig(weight=2.0, second_order=False)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        cam, logits, _ = gradcam(CamModel(model, "target"), x, labels, second_order=False)
        ce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.cast(labels, tf.float32), logits[:, 0]))
        loss = ce + 2.0 * tf.reduce_mean(relevance_loss(cam, masks))
    expected = tape.gradient(loss, variables)
    fused, _, fused_ce, _, _ = fused_gradients(*split_at(model, "target"), variables, x,
                                                       labels, masks, 2.0, cfg, training=False)
    np.testing.assert_allclose(fused_ce.numpy(), ce.numpy(), rtol=1e-6)
    for e, f in zip(expected, fused):
        np.testing.assert_allclose(f.numpy(), e.numpy(), rtol=2e-3, atol=1e-6)
    # a saturated image (p == y in float32) keeps finite gradients
    big = tf.constant(np.full((2, 16, 16, 3), 1e4, np.float32))
    grads, *_ = fused_gradients(*split_at(model, "target"), variables, big, tf.constant([1, 1]),
                                masks[:2], 2.0, cfg, training=False)
    assert all(np.isfinite(g.numpy()).all() for g in grads)


def test_fused_step_trains_and_refuses_what_it_cannot_do(tmp_path):
    from conftest import tiny_classifier
    data = make_split(BenchmarkConfig(image_size=16), "train", 8)
    masks = relevance_masks(data)
    trainer = Gfsr(tiny_classifier(size=16), tmp_path / "fused", verbose=0,
                      train=TrainConfig(epochs=1, batch_size=4),
                      relevance=RelevanceConfig(second_order=False, fused=True),
                      target_layer="target")
    history = trainer.fit(data, data, {"mask": masks})
    assert history[-1]["relevance"] > 0 and np.isfinite(history[-1]["loss"])
    with pytest.raises(ValueError, match="second_order=False"):
        RelevanceConfig(second_order=True, fused=True)  # refused before any data loads
    with pytest.raises(ValueError, match="ending in an Activation layer"):
        Gfsr(tiny_classifier(size=16, units=3, final="dense"), tmp_path / "y", verbose=0,
                target_layer="target", relevance=RelevanceConfig(second_order=False, fused=True))


def test_fused_softmax_head_logit_and_log_probability_cams():
    """Softmax heads: fused_cam="logit" reproduces the unfused first-order GFSR gradients (the
    second backward runs above the target only); "log_probability" uses the Grad-CAM of
    log p(true class), checked against an independent tape on log_softmax."""
    from conftest import tiny_classifier
    from gfsr_tf.losses import relevance_loss
    from gfsr_tf.models import CamModel
    from gfsr_tf.saliency import gradcam
    from gfsr_tf.saliency.gradcam import cam_from_gradients
    from gfsr_tf.methods.gfsr.fused import fused_gradients, split_at
    model = tiny_classifier(size=16, units=3)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 50, (4, 16, 16, 3)).astype(np.float32))
    labels = tf.constant([0, 1, 2, 1])
    masks = tf.constant(rng.uniform(0, 1, (4, 16, 16)).astype(np.float32))
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        cam, logits, _ = gradcam(CamModel(model, "target"), x, labels, second_order=False)
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        loss = ce + 2.0 * tf.reduce_mean(relevance_loss(cam, masks))
    expected = tape.gradient(loss, variables)
    parts = split_at(model, "target")
    cfg = RelevanceConfig(weight=2.0, second_order=False, fused=True, fused_cam="logit")
    fused, _, fused_ce, _, fused_cam = fused_gradients(*parts, variables, x, labels, masks, 2.0,
                                                       cfg, training=False)
    np.testing.assert_allclose(fused_ce.numpy(), ce.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fused_cam.numpy(), cam.numpy(), atol=1e-5)
    for e, f in zip(expected, fused):
        np.testing.assert_allclose(f.numpy(), e.numpy(), rtol=2e-3, atol=1e-6)
    # log-probability CAM: Grad-CAM of log_softmax(z)[y] by an independent tape
    with tf.GradientTape() as t:
        a = parts[0](x, training=False)
        t.watch(a)
        log_p = tf.nn.log_softmax(parts[1](a, training=False))
        score = tf.reduce_sum(tf.gather(log_p, labels, axis=1, batch_dims=1))
    reference = cam_from_gradients(a, t.gradient(score, a)).numpy()
    cfg = RelevanceConfig(weight=2.0, second_order=False, fused=True, fused_cam="log_probability")
    *_, lp_cam = fused_gradients(*parts, variables, x, labels, masks, 2.0, cfg, training=False)
    np.testing.assert_allclose(lp_cam.numpy(), reference, atol=1e-5)
    assert not np.allclose(lp_cam.numpy(), cam.numpy(), atol=1e-2)  # a different explanation


@pytest.mark.parametrize("relevance", [RelevanceConfig(second_order=True),
                                       RelevanceConfig(second_order=False, fused=True)],
                         ids=["exact", "fused"])
def test_gfsr_step_compiles_with_xla_on_cpu(tmp_path, relevance):
    from conftest import tiny_classifier
    data = make_split(BenchmarkConfig(image_size=16), "train", 4)
    masks = relevance_masks(data)
    trainer = Gfsr(tiny_classifier(size=16), tmp_path / "xla", verbose=0, relevance=relevance,
                      train=TrainConfig(batch_size=4, jit_compile=True), target_layer="target")
    trainer.step.on.assign(1.0)
    trainer.step.on_decision.assign(1.0)
    out = trainer.train_step({"image": tf.constant(data.images),
                              "label": tf.constant(data.labels.astype(np.int32)),
                              "mask": tf.constant(masks)})
    assert np.isfinite(out["loss"].numpy()) and out["relevance"].numpy() > 0
    assert all(np.isfinite(v.numpy()).all() for v in trainer.model.trainable_variables)


def test_mixed_precision_gfsr_step_runs_with_finite_gradients(tmp_path):
    """The GPU option, run on CPU: float16 compute, float32 variables, head, Grad-CAM and losses,
    loss scaling in the custom loop. (The step runs on a small float16 network: a float16
    ResNet50 step on CPU takes minutes.)"""
    import keras
    from conftest import tiny_classifier
    resnet = build_classifier(2, (64, 64, 3), weights=None, seed=0, mixed_precision=True)
    assert resnet.get_layer("conv1_conv").compute_dtype == "float16"
    assert resnet.get_layer("conv1_conv").variable_dtype == "float32"
    assert resnet.get_layer("logits").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = tiny_classifier(size=16, dtype="mixed_float16")
    assert model.get_layer("target").compute_dtype == "float16"
    data = make_split(BenchmarkConfig(image_size=16), "train", 4)
    trainer = Gfsr(model, tmp_path / "mp", verbose=0, target_layer="target",
                      train=TrainConfig(batch_size=4, mixed_precision=True),
                      relevance=RelevanceConfig(second_order=True))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    trainer.step.on.assign(1.0)
    trainer.step.on_decision.assign(1.0)
    before = [v.numpy().copy() for v in model.trainable_variables]
    batch = {"image": tf.constant(data.images), "label": tf.constant(data.labels.astype(np.int32)),
             "mask": tf.constant(relevance_masks(data))}
    for _ in range(16):  # dynamic loss scaling skips (and halves its scale on) overflowing steps
        out = trainer.train_step(batch)
        assert np.isfinite(out["loss"].numpy()) and out["relevance"].numpy() > 0
        after = [v.numpy() for v in model.trainable_variables]
        if any(not np.array_equal(a, b) for a, b in zip(after, before)):
            break
    else:
        pytest.fail("no update applied in 16 steps")
    assert all(np.isfinite(a).all() for a in after)


def test_a_finished_run_deletes_its_checkpoints_and_is_read_back(data, tmp_path):
    train, val = data
    cfg = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=1)
    first = Gfsr(_small(), tmp_path, train=cfg, relevance=RelevanceConfig(weight=0.0)).fit(train, val)
    assert not (tmp_path / "checkpoints").exists() and (tmp_path / "best.keras").exists()
    again = Gfsr(_small(), tmp_path, train=cfg, relevance=RelevanceConfig(weight=0.0)).fit(train, val)
    assert again == first  # read back from metrics.jsonl, not retrained
    with pytest.raises(ValueError, match="no checkpoint to continue from") as info:
        Gfsr(_small(), tmp_path, train=dataclasses.replace(cfg, epochs=2),
             relevance=RelevanceConfig(weight=0.0)).fit(train, val)
    assert "\n" not in str(info.value)


def test_a_warmup_started_from_the_baselines_snapshot_matches_training_it_from_scratch(
        data, tmp_path):
    # GFSR with a 2-epoch warm-up (extension b: consistency, no CAM term) trained from scratch
    # vs started from a baseline run's state after epoch 2: the warm-up is plain training, so
    # both end equal (to round-off: the gated step adds terms multiplied by 0)
    from gfsr_tf.methods.baseline import BaselineStep
    train, val = data
    masks = {"mask": relevance_masks(train)}
    cfg = TrainConfig(epochs=3, batch_size=4, steps_per_epoch=1)
    relevance = RelevanceConfig(weight=0.0, consistency_weight=0.1, warmup_epochs=2)
    scratch = _small()
    Gfsr(scratch, tmp_path / "scratch", train=cfg, relevance=relevance).fit(train, val, masks)
    baseline = Trainer(_small(), tmp_path / "baseline",
                       functools.partial(BaselineStep, logits_layer="conv3_block4_out"),
                       train=cfg, verbose=0)
    base_history = baseline.fit(train, val, snapshot_epochs={2})
    snapshot = tmp_path / "baseline" / "snapshots" / "epoch-2"
    assert (snapshot / "ckpt.index").exists()
    shared = _small()
    history = Gfsr(shared, tmp_path / "shared", train=cfg, relevance=relevance).fit(
        train, val, masks, start_from=snapshot)
    assert [h.get("shared_from") for h in history] == ["baseline", "baseline", None]
    assert history[1]["val_loss"] == base_history[1]["val_loss"]
    assert history[2]["consistency"] > 0        # epoch 3 trained guided, in this run
    lr = cfg.learning_rate
    for a, b in zip(scratch.trainable_weights, shared.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=3 * lr, err_msg=a.path)
    # a rerun resumes its own finished run, never the snapshot again
    again = Gfsr(_small(), tmp_path / "shared", train=cfg, relevance=relevance).fit(
        train, val, masks, start_from=snapshot)
    assert [h["epoch"] for h in again] == [1, 2, 3]


def test_the_study_shares_each_warmup_with_the_baseline_that_precedes_it(tmp_path):
    from gfsr_tf.config import StudyConfig, VariantConfig
    from gfsr_tf.study.run import plan_shared_epochs
    c = StudyConfig()
    c.train.epochs = 16
    c.variants = [VariantConfig("baseline", "baseline"),
                  VariantConfig("warm", "gfsr", {"warmup_epochs": 8}),
                  VariantConfig("cold", "gfsr", {}),
                  VariantConfig("long", "gfsr", {"warmup_epochs": 16})]
    plan = plan_shared_epochs(c, tmp_path)
    # a variant whose every epoch is plain (here a warm-up as long as the run; DFR) takes the
    # baseline's whole run
    assert plan == {"baseline": {"snapshot_epochs": {8, 16}},
                    "warm": {"start_from": tmp_path / "baseline" / "snapshots" / "epoch-8"},
                    "long": {"start_from": tmp_path / "baseline" / "snapshots" / "epoch-16"}}
    c.train.share_warmup = False
    assert plan_shared_epochs(c, tmp_path) == {}


def test_batchnorm_statistics_are_re_estimated_on_the_images_by_hand():
    """recalibrate_batchnorm: each BN layer's running mean / variance becomes the image-weighted
    average of the training-mode batch statistics (checked by hand for the first BN, whose input
    does not depend on another BN), in a nested sub-model too; momenta restored; idempotent."""
    import keras
    from gfsr_tf.training.batchnorm import batchnorm_layers, recalibrate_batchnorm
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((6, 6, 3))
    inner = keras.Model(inner_in, keras.layers.BatchNormalization(name="inner_bn")(
        keras.layers.Conv2D(4, 3, name="inner_conv")(inner_in)), name="backbone")
    inputs = keras.Input((8, 8, 2))
    conv = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn")(conv)
    h = inner(keras.layers.ReLU()(h))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h)))
    layers = batchnorm_layers(model)
    assert [layer.name for layer in layers] == ["bn", "inner_bn"]
    for layer in layers:
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, 7.0))
    x = np.random.default_rng(0).normal(2, 3, (10, 8, 8, 2)).astype(np.float32)
    out = recalibrate_batchnorm(model, x, batch_size=4)              # batches of 4, 4, 2
    assert out == {"layers": 2, "images": 10, "batches": 3}
    features = keras.Model(inputs, conv)(x).numpy()
    means = [features[i:i + 4].mean((0, 1, 2)) * len(features[i:i + 4]) for i in (0, 4, 8)]
    varis = [features[i:i + 4].var((0, 1, 2)) * len(features[i:i + 4]) for i in (0, 4, 8)]
    np.testing.assert_allclose(layers[0].moving_mean.numpy(), np.sum(means, 0) / 10, rtol=1e-4)
    np.testing.assert_allclose(layers[0].moving_variance.numpy(), np.sum(varis, 0) / 10,
                               rtol=1e-3)
    assert not np.allclose(layers[1].moving_mean.numpy(), 7.0)      # the nested one too
    assert layers[0].momentum == 0.9
    again = [layer.moving_mean.numpy().copy() for layer in layers]
    recalibrate_batchnorm(model, x, batch_size=4)
    for layer, before in zip(layers, again):
        np.testing.assert_allclose(layer.moving_mean.numpy(), before, rtol=1e-6)
