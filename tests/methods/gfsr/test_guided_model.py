"""GuidedModel: GFSR through Keras' compile()/fit() on classifiers this project did not build."""
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gfsr_tf
from gfsr_tf.losses import relevance_loss
from gfsr_tf.saliency import gradcam
from gfsr_tf.saliency.cam_model import CamModel

SIZE = 24


def _data(n=16, seed=0):
    """Images whose class is the brightness of a square in the left half; masks = that half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, SIZE, SIZE, 3)).astype(np.float32)
    x[:, 6:18, 2:10] += (y * 1.5 - 0.75)[:, None, None, None]
    masks = np.zeros((n, SIZE, SIZE), np.float32)
    masks[:, :, :SIZE // 2] = 1.0
    return x, masks, y


def _dataset(x, masks, y, batch=8):
    return tf.data.Dataset.from_tensor_slices(({"image": x, "mask": masks}, y)).batch(batch)


def _small(units=2, activation="softmax"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="features")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(h))


def test_first_step_loss_is_ce_plus_lambda_times_the_relevance_of_the_inner_gradcam():
    """The logged loss of one step, recomputed independently: the model's Grad-CAM
    (saliency.gradcam, training mode as the paper's step) against the masks through
    losses.relevance_loss, plus the cross-entropy of the same forward pass."""
    x, masks, y = _data(8)
    classifier = _small()
    before = [w.numpy() for w in classifier.weights]
    cam, logits, _ = gradcam(CamModel(classifier, "features"), tf.constant(x), y, training=True)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    rel = tf.reduce_mean(relevance_loss(cam, masks))
    guided = gfsr_tf.GuidedModel(classifier, layer="features", relevance_weight=2.0)
    guided.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"])
    logs = guided.fit(_dataset(x, masks, y), epochs=1, verbose=0).history
    assert logs["ce"][0] == pytest.approx(float(ce), rel=1e-5)
    assert logs["relevance"][0] == pytest.approx(float(rel), rel=1e-5)
    assert logs["loss"][0] == pytest.approx(float(ce + 2.0 * rel), rel=1e-5)
    for w, b in zip(classifier.weights, before):   # learning rate 0: nothing moved
        np.testing.assert_array_equal(w.numpy(), b)


def _nested_mobilenet():
    """Transfer-learning shape: a keras.applications backbone called as one layer."""
    base = keras.applications.MobileNetV2(include_top=False, weights=None,
                                          input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Dropout(0.2)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))


SLOW = pytest.mark.slow   # MobileNetV2 trains for ~20 s on 2 cores


@pytest.mark.parametrize("build, layer", [
    pytest.param(lambda: keras.applications.MobileNetV2(include_top=True, weights=None,
                                                        input_shape=(32, 32, 3), classes=2),
                 "out_relu", marks=SLOW, id="mobilenetv2-own-softmax-head"),
    pytest.param(_nested_mobilenet, "block_13_expand_relu", marks=SLOW,
                 id="nested-mobilenetv2-inner-layer"),
    pytest.param(lambda: keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="features"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")]),
        "features", id="sequential-sigmoid"),
])
def test_third_party_classifier_trains_and_saves_as_plain_keras(build, layer, tmp_path):
    keras.utils.set_random_seed(0)
    classifier = build()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    masks = np.zeros((16, 32, 32), np.float32)
    masks[:, 8:24, 8:24] = 1
    guided = gfsr_tf.GuidedModel(classifier, layer=layer)
    guided.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    val = tf.data.Dataset.from_tensor_slices(({"image": x}, y)).batch(8)  # no masks
    history = guided.fit(_dataset(x, masks, y), validation_data=val, epochs=2, verbose=0).history
    assert {"loss", "ce", "relevance", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    assert "val_relevance" not in history  # validation computes no relevance loss
    assert all(np.isfinite(history["relevance"])) and history["relevance"][0] > 0
    guided.classifier.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x[:4])
    expected = classifier.predict(x[:4], verbose=0)
    code = ("import sys, numpy as np, keras; m = keras.models.load_model(sys.argv[1]); "
            "p = m.predict(np.load(sys.argv[2]), verbose=0); np.save(sys.argv[3], p); "
            "assert not any(k.startswith('gfsr_tf') for k in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.keras"),
                        str(tmp_path / "x.npy"), str(tmp_path / "p.npy")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)


def test_relevance_loss_falls_and_standard_callbacks_run(tmp_path):
    x, masks, y = _data(32)
    guided = gfsr_tf.GuidedModel(_small(), layer="features", relevance_weight=1.0)
    guided.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    callbacks = [keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
                 keras.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"),
                                                 save_weights_only=True),
                 keras.callbacks.EarlyStopping(monitor="loss", patience=50),
                 keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))]
    history = guided.fit(_dataset(x, masks, y), epochs=12, verbose=0, callbacks=callbacks).history
    rel = history["relevance"]
    assert rel[-1] < 0.8 * rel[0], rel
    assert (tmp_path / "log.csv").read_text().splitlines()[0].split(",")[:4] == \
        ["epoch", "accuracy", "ce", "consistency"]
    assert (tmp_path / "w.weights.h5").exists()


def test_warm_up_is_scheduled_by_fit_and_options_are_checked():
    x, masks, y = _data(16)
    guided = gfsr_tf.GuidedModel(_small(), layer="features", warmup_epochs=1)
    guided.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = guided.fit(_dataset(x, masks, y), epochs=2, verbose=0).history
    assert history["loss"][0] == pytest.approx(history["ce"][0])        # epoch 1: warm-up
    assert history["loss"][1] > history["ce"][1]                          # epoch 2: guided
    with pytest.raises(ValueError, match="without loss="):
        guided.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="gfsr.weight must be float"):
        gfsr_tf.GuidedModel(_small(), relevance_weight="a")
    plus = gfsr_tf.GuidedModel.gfsr_plus(_small(), layer="features")
    assert plus.relevance.consistency_weight > 0 and plus.relevance.cam_mode == "inference"
    assert (plus.relevance.weight, plus.relevance.negative_evidence_weight) == (3.0, 1.0)


def test_callbacks_log_the_audit_by_hand_and_write_overlays(tmp_path):
    """ShortcutAudit's figures against sklearn and a hand computation on the epoch's model; the
    overlay callback writes one figure per epoch."""
    from sklearn.metrics import roc_auc_score
    from gfsr_tf.callbacks import GradCamOverlays, ShortcutAudit
    x, masks, y = _data(24, seed=3)
    marked = np.arange(24) % 2 == 0
    marked_x = x.copy()
    marked_x[marked, :4, -4:] = 3.0                      # a bright corner "marker"
    guided = gfsr_tf.GuidedModel(_small(units=1, activation="sigmoid"), layer="features")
    guided.compile(optimizer=keras.optimizers.Adam(1e-2))
    audit = ShortcutAudit(marked_x, x, y, marked)
    overlays = GradCamOverlays(marked_x[:3], tmp_path / "overlays", layer="features")
    history = guided.fit(_dataset(marked_x, masks, y), epochs=2, verbose=0,
                         callbacks=[audit, overlays]).history
    p = guided.classifier.predict(marked_x, verbose=0)[:, 0].astype(np.float64)
    pt = guided.classifier.predict(x, verbose=0)[:, 0].astype(np.float64)
    z, zt = np.log(p / (1 - p)), np.log(pt / (1 - pt))
    by_hand = np.mean([roc_auc_score(marked[y == c], z[y == c]) for c in (0, 1)])
    assert history["audit_marker_auc"][-1] == pytest.approx(by_hand, abs=1e-6)
    assert history["audit_removal_effect"][-1] == pytest.approx((z - zt)[marked].mean(),
                                                                 abs=1e-4)
    assert sorted(p.name for p in (tmp_path / "overlays").glob("*.png")) == \
        ["epoch_001.png", "epoch_002.png"]
    with pytest.raises(ValueError, match="one entry per image"):
        ShortcutAudit(x, x[:3], y, marked)


@pytest.mark.slow  # its own process with two logical CPUs (~20 s)
def test_guided_fit_under_mirrored_strategy_and_xla_matches_a_plain_run():
    from pathlib import Path
    probe = Path(__file__).with_name("guided_distribute_probe.py")
    r = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after_epoch:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.parametrize("weight", [0.0, 1.0])   # the baseline step, the exact GFSR step
def test_backup_and_restore_resumes_where_an_uninterrupted_run_ends(weight, tmp_path):
    x, masks, y = _data(16, seed=5)

    def run(callbacks):
        guided = gfsr_tf.GuidedModel(_small(), layer="features", relevance_weight=weight,
                                     warmup_epochs=1)
        guided.compile(optimizer=keras.optimizers.Adam(1e-2))
        guided.fit(_dataset(x, masks, y), epochs=4, verbose=0, callbacks=callbacks)
        return [w.numpy() for w in guided.classifier.weights]

    straight = run([])
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        run([backup, _Interrupt(after_epoch=2)])
    seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
    epochs = []
    resumed = run([keras.callbacks.BackupAndRestore(str(tmp_path / "backup")), seen])
    assert epochs == [2, 3]   # resumed after the 2 finished epochs, not retrained from scratch
    for a, b in zip(straight, resumed):
        if weight == 0.0:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # MobileNetV2, 8 epochs of 256 images at 64 px: ~45 s on 2 cores
def test_the_example_script_outside_the_repo_trains_a_keras_application(tmp_path):
    """examples/guided_fit.py copied out of the repo and run as a user runs it: a
    keras.applications MobileNetV2 with its own softmax head, GuidedModel.fit with CSVLogger,
    GradCamOverlays and ShortcutAudit; the relevance loss is logged and falls, and the saved
    classifier loads in a fresh process without gfsr_tf."""
    import json
    import shutil
    from conftest import REPO
    script = tmp_path / "guided_fit.py"
    shutil.copy(REPO / "examples" / "guided_fit.py", script)
    r = subprocess.run([sys.executable, str(script), "--out", "out"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert history["relevance"][-1] < 0.95 * history["relevance"][0], history["relevance"]
    # NaN while the from-scratch network still gives every image the same output (the callback
    # warns), a real AUC once it does not
    assert np.isfinite(history["audit_marker_auc"][-1])
    assert len(list((tmp_path / "out" / "overlays").glob("*.png"))) == 8   # one per epoch
    code = ("import sys, keras; m = keras.models.load_model(sys.argv[1]); "
            "assert m.output_shape == (None, 2), m.output_shape; "
            "assert not any(k.startswith('gfsr_tf') for k in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out" / "classifier.keras")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_model_checkpoint_saves_the_whole_wrapper_and_a_fresh_process_trains_on(tmp_path):
    """ModelCheckpoint without save_weights_only writes the wrapper as a .keras file: its
    options, the classifier and the optimizer state; a fresh process loads it (after
    `from gfsr_tf import GuidedModel`, which registers the class) and continues fit."""
    x, masks, y = _data(16)
    guided = gfsr_tf.GuidedModel(_small(), layer="features", relevance_weight=0.5,
                                 cam_mode="inference")
    guided.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    guided.fit(_dataset(x, masks, y), epochs=2, verbose=0,
               callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "guided.keras"))])
    np.savez(tmp_path / "data.npz", x=x, masks=masks, y=y,
             p=guided.classifier.predict(x, verbose=0))
    code = """
import sys, numpy as np, keras, tensorflow as tf
from gfsr_tf import GuidedModel
g = keras.models.load_model(sys.argv[1])
d = np.load(sys.argv[2])
assert isinstance(g, GuidedModel) and g.layer == "features", type(g)
assert g.relevance.weight == 0.5 and g.relevance.cam_mode == "inference"
assert int(g.optimizer.iterations) == 4, int(g.optimizer.iterations)   # 2 epochs x 2 steps
np.testing.assert_allclose(g.classifier.predict(d["x"], verbose=0), d["p"], atol=1e-6)
ds = tf.data.Dataset.from_tensor_slices(({"image": d["x"], "mask": d["masks"]}, d["y"])).batch(8)
h = g.fit(ds, epochs=1, verbose=0).history
assert np.isfinite(h["relevance"][0]) and int(g.optimizer.iterations) == 6
"""
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "guided.keras"),
                        str(tmp_path / "data.npz")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_tensorboard_logs_the_guided_loss_terms_and_keras_tuner_searches_lambda(tmp_path):
    """TensorBoard writes the relevance loss beside the compiled metrics; KerasTuner treats the
    relevance weight as a hyper-parameter of a GuidedModel like any other."""
    import keras_tuner
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    x, masks, y = _data(16)
    guided = gfsr_tf.GuidedModel(_small(), layer="features", relevance_weight=1.0)
    guided.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    guided.fit(_dataset(x, masks, y), epochs=2, verbose=0,
               callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    events = EventAccumulator(str(tmp_path / "tb" / "train")).Reload()
    assert {"epoch_relevance", "epoch_ce", "epoch_loss", "epoch_accuracy"} <= \
        set(events.Tags()["tensors"])
    assert len(events.Tensors("epoch_relevance")) == 2

    def build(hp):
        g = gfsr_tf.GuidedModel(_small(), layer="features",
                                relevance_weight=hp.Choice("relevance_weight", [0.0, 2.0]))
        g.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
        return g

    tuner = keras_tuner.GridSearch(build, objective=keras_tuner.Objective("loss", "min"),
                                   directory=str(tmp_path / "tuner"), project_name="lambda")
    tuner.search(_dataset(x, masks, y), epochs=1, verbose=0)
    trials = tuner.oracle.get_best_trials(2)
    assert sorted(t.hyperparameters.get("relevance_weight") for t in trials) == [0.0, 2.0]
    # the loss the tuner minimised is CE + lambda x relevance: lambda 0 gives the lower one
    assert trials[0].hyperparameters.get("relevance_weight") == 0.0


def test_bn_recalibration_after_fit_re_estimates_the_statistics_on_the_training_images():
    from gfsr_tf.training.batchnorm import batchnorm_layers, recalibrate_batchnorm
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    classifier = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(h)))
    x, masks, y = _data(16)
    guided = gfsr_tf.GuidedModel(classifier, layer="features", bn_recalibration=True)
    guided.compile(optimizer=keras.optimizers.Adam(1e-2))
    guided.fit(_dataset(x, masks, y), epochs=2, verbose=0)
    bn = batchnorm_layers(classifier)[0]
    after_fit = bn.moving_mean.numpy().copy()
    recalibrate_batchnorm(classifier, x, batch_size=8)      # the same images, same batches
    np.testing.assert_allclose(bn.moving_mean.numpy(), after_fit, rtol=1e-5)
    with pytest.raises(ValueError, match="pass it as a tf.data.Dataset"):
        guided.fit({"image": x, "mask": masks}, y, epochs=1, verbose=0)


def test_held_statistics_in_keras_fit_are_re_estimated_each_guided_epoch_and_released():
    """batchnorm='held' through Keras' fit: after the warm-up epoch the statistics are
    re-estimated on the training images and held (momentum 1, the train function traced again),
    so the last epoch leaves them as re-estimated from its starting weights; fit gives the
    layers their momentum back."""
    from gfsr_tf.training.batchnorm import batchnorm_layers, recalibrate_batchnorm
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.9)(h))
    classifier = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(h)))
    x, masks, y = _data(16)
    guided = gfsr_tf.GuidedModel(classifier, layer="features", batchnorm="held",
                                 cam_mode="inference", warmup_epochs=1)
    guided.compile(optimizer=keras.optimizers.Adam(1e-2))
    starts = []

    class Record(keras.callbacks.Callback):       # the weights each epoch starts from
        def on_epoch_begin(self, epoch, logs=None):
            starts.append([w.numpy().copy() for w in classifier.weights])

    guided.fit(_dataset(x, masks, y), epochs=3, verbose=0, callbacks=[Record()])
    bn = batchnorm_layers(classifier)[0]
    assert bn.momentum == 0.9
    final = bn.moving_mean.numpy().copy()
    reference = keras.models.clone_model(classifier)
    reference.set_weights(starts[-1])                 # epoch 3's starting weights...
    recalibrate_batchnorm(reference, x, batch_size=8)  # ...re-estimated on the same batches
    np.testing.assert_allclose(final, batchnorm_layers(reference)[0].moving_mean.numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pass it as a tf.data.Dataset"):
        guided.fit({"image": x, "mask": masks}, y, epochs=1, verbose=0)
