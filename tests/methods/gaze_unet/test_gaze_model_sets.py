"""Watanabe et al.'s model sets 1-3 on the gaze U-Net: the generator's map in the loss (a double
backward), which weights each set moves, set 2's stop-gradient target, and a saved model free of
custom-gradient layers."""
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.config import TrainConfig
from gfsr_tf.methods import get_method
from gfsr_tf.presets import preset

SIZE = 32


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return {"image": tf.constant(rng.integers(0, 255, (2, SIZE, SIZE, 1)).astype(np.uint8)),
            "label": tf.constant([0, 2]),
            "mask": tf.constant(rng.random((2, SIZE, SIZE)).astype(np.float32))}


def _study():
    study = preset("gaze_unet", smoke=True)
    study.model.weights = None
    study.train = TrainConfig(epochs=1, batch_size=2, learning_rate=1e-3)
    return study


def _moved(options, batch):
    """Which weights two traced steps move: (encoder+head moved share, decoder moved share)."""
    method, study = get_method("gaze_unet"), _study()
    config = method.make_config(options)
    model = method.build_model(study, config, 3, (SIZE, SIZE, 3), [])
    optimizer = keras.optimizers.Adam(1e-3)
    step = method.make_step(model, optimizer, study, config)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    run = tf.function(step)
    for _ in range(2):
        out = {k: float(v) for k, v in run(batch).items()}
        assert all(np.isfinite(v) for v in out.values()), out
    moved = {v.path: not np.array_equal(v.numpy(), before[v.path])
             for v in model.trainable_variables}
    decoder = [m for p, m in moved.items() if p.startswith(("decoder", "gaze_logits"))]
    encoder = [m for p, m in moved.items() if not p.startswith(("decoder", "gaze_logits"))]
    return np.mean(encoder), np.mean(decoder), out


@pytest.mark.slow  # ~30 s each on 2 cores (a double backward through EfficientNet-B0); the
# double backward itself is checked fast against finite differences in test_heatmap_generators
@pytest.mark.parametrize("options,decoder_moves", [
    ({"model_set": 1, "rule": "deconvnet"}, False),
    ({"model_set": 3, "rule": "guided_backprop"}, True)])
def test_model_sets_train_the_right_weights(options, decoder_moves, batch):
    encoder, decoder, out = _moved(options, batch)
    assert encoder > 0.5 and out["map_bce"] > 0          # the map's loss reaches the encoder
    assert (decoder > 0.5) if decoder_moves else decoder == 0.0


@pytest.mark.slow  # every set x rule (about 2 min on 2 cores)
@pytest.mark.parametrize("model_set", [1, 2, 3])
@pytest.mark.parametrize("rule", ["guided_backprop", "deconvnet", "gradient"])
def test_every_set_and_rule_trains(model_set, rule, batch):
    encoder, decoder, _ = _moved({"model_set": model_set, "rule": rule}, batch)
    assert encoder > 0.5 and ((decoder == 0.0) if model_set == 1 else decoder > 0.5)


def test_set2_stop_gradient_target_equals_a_constant_array(batch):
    from gfsr_tf.methods.gaze_unet import _bce
    method, study = get_method("gaze_unet"), _study()
    config = method.make_config({"model_set": 2, "rule": "guided_backprop"})
    model = method.build_model(study, config, 3, (SIZE, SIZE, 3), [])
    # no dropout anywhere (EfficientNet's stochastic depth included): the step's forward pass
    # and the reference's must be the same function
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    captured = {}

    class Capture:
        def apply_gradients(self, pairs):
            captured["grads"] = [g.numpy() for g, _ in pairs]
    step = method.make_step(model, keras.optimizers.Adam(), study, config)
    step.optimizer = Capture()
    step(batch)                                     # no double backward in set 2: eager is fine
    x = step.preprocess(batch["image"])
    out = step._logits(x, training=True)
    m = step._map(x, tf.cast(out[0], tf.float32), batch["label"]).numpy()   # a plain array now
    with tf.GradientTape() as tape:
        out = step._logits(x, training=True)
        ce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.one_hot(batch["label"], 3), out[0]))
        loss = config.gamma * ce + (1 - config.gamma) * _bce(m[..., None], out[1])
    expected = tape.gradient(loss, model.trainable_variables)
    for got, want, v in zip(captured["grads"], expected, model.trainable_variables):
        want = want.numpy()
        # random-init EfficientNet on 0-255 pixels with batch 2: early-layer gradients reach
        # 1e6, so the tolerance is relative to each variable's largest entry
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max() + 1e-7,
                                   err_msg=v.path)


def test_bad_model_set_options_are_refused():
    method = get_method("gaze_unet")
    for options, match in (({"model_set": 4}, "model_set"), ({"rule": "lrp"}, "rule"),
                           ({"set3_weight": 1.5}, "set3_weight"), ({"gamma": -0.1}, "gamma"),
                           ({"model_set": 2, "decoder": False}, "needs decoder")):
        with pytest.raises(ValueError, match=match):
            method.make_config(options)


@pytest.mark.slow  # ~45 s (EfficientNet-B0 traced twice, a fresh process); the same property on a
# small network runs in the default suite (test_heatmap_generators)
def test_saved_model_after_generator_steps_loads_with_plain_keras(tmp_path, batch):
    # set 2 runs the rule view inside the traced step (without the double backward of sets 1
    # and 3, which costs a minute here): the saved model must carry none of it
    method, study = get_method("gaze_unet"), _study()
    config = method.make_config({"model_set": 2})
    model = method.build_model(study, config, 3, (SIZE, SIZE, 3), [])
    step = method.make_step(model, keras.optimizers.Adam(1e-3), study, config)
    tf.function(step)(batch)
    model.save(tmp_path / "best.keras")
    x = np.asarray(step.preprocess(batch["image"]))
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, keras; "
            f"m = keras.models.load_model(r'{tmp_path / 'best.keras'}'); "
            f"p = m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0); "
            "assert 'gfsr_tf' not in sys.modules; "
            "names = {getattr(getattr(l, 'activation', None), '__name__', '') for l in m.layers}; "
            "assert 'activation' not in names, names")   # a custom-gradient twin's name
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {l.activation.__name__ for l in model.layers if hasattr(l, "activation")} <= \
        {"silu", "sigmoid", "linear", "relu"}
