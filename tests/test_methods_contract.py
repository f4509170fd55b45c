"""The method seam. One contract test parametrised over the registered methods (keras-hub's
`TestCase` is the model): build -> 2 training steps with finite gradients -> plain
`keras.models.load_model` in a fresh process -> exact resume -> explain shape -> SavedModel
export. And a method defined only here runs a whole study through the registry, touching no
package file."""
import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.config import TrainConfig, VariantConfig
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.guidance.masks import relevance_masks
from gfsr_tf.methods import Method, get_method, method_names, register
from gfsr_tf.presets import preset
from gfsr_tf.preprocessing import get_preprocessor
from gfsr_tf.training import ClassificationStep, Trainer

SIZE = 32


def _study():
    config = preset("smoke")
    config.model.backbone = "small_cnn"   # the contract, not ResNet50's cost
    config.benchmark.image_size = SIZE
    config.train = TrainConfig(epochs=2, batch_size=4, steps_per_epoch=1, keep_checkpoints=True)
    return config


@pytest.fixture(scope="module")
def data():
    config = _study()
    return {"train": make_split(config.benchmark, "train", 8),
            "val": make_split(config.benchmark, "val", 4)}


def _targets(method, options, train):
    request = method.guidance(options)
    return {"mask": relevance_masks(train, *request)} if request else {}


# options that keep each method at the contract's size (small backbones)
CONTRACT_OPTIONS = {"baseline": {}, "gfsr": {}, "patchnet": {"backbone": "small_cnn"},
                    "multilabel": {"backbone": "small_cnn"}}
# registered-serialisable custom layers (DESIGN.md): the fresh process imports this module only
NEEDS_IMPORT = {"patchnet": "gfsr_tf.models"}


@pytest.mark.parametrize("name", sorted(CONTRACT_OPTIONS))
def test_method_contract(name, data, tmp_path):
    study, method = _study(), get_method(name)
    options = method.make_config(CONTRACT_OPTIONS[name])
    train = data["train"]

    def build():
        return method.build_model(study, options, 2, (SIZE, SIZE, 3), [])

    # 1. two training steps with finite gradients that move the weights
    model = build()
    trainer = Trainer(model, tmp_path / "probe", method.step_factory(options, study),
                      train=study.train, verbose=0)
    trainer.step.on_epoch(1)
    before = [v.numpy().copy() for v in model.trainable_variables]
    x = {"image": tf.constant(train.images[:4]), "label": tf.constant(train.labels[:4]),
         **{k: tf.constant(v[:4]) for k, v in _targets(method, options, train).items()}}
    for _ in range(2):
        out = trainer.train_step(x)
        assert all(np.isfinite(float(v)) for v in out.values()), out
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.isfinite(a).all() for a in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(after, before)) > len(before) // 2

    # 2. exact resume: 1 epoch + resume to 2 == 2 epochs uninterrupted (same seed and data)
    targets = _targets(method, options, train)
    full = build()
    Trainer(full, tmp_path / "full", method.step_factory(options, study), train=study.train,
            verbose=0).fit(train, data["val"], targets)
    one = dataclasses.replace(study.train, epochs=1)
    Trainer(build(), tmp_path / "cut", method.step_factory(options, study), train=one,
            verbose=0).fit(train, data["val"], targets)
    resumed = build()
    history = Trainer(resumed, tmp_path / "cut", method.step_factory(options, study),
                      train=study.train, verbose=0).fit(train, data["val"], targets)
    assert [h["epoch"] for h in history] == [1, 2]
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=a.path)

    # 3. the saved model loads with plain Keras in a process that never imports gfsr_tf
    x = np.asarray(get_preprocessor(method.preprocessor_for(options))(data["val"].images))
    np.save(tmp_path / "x.npy", x)
    saved = tmp_path / "full" / "best.keras"
    imports = f"import {NEEDS_IMPORT[name]}; " if name in NEEDS_IMPORT else ""
    code = (f"import sys, numpy as np, keras; {imports}"
            f"m = keras.models.load_model(r'{saved}'); "
            f"np.save(r'{tmp_path / 'p.npy'}', m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0)); "
            + ("" if imports else "assert 'gfsr_tf' not in sys.modules"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    best = keras.models.load_model(saved)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), best.predict(x, verbose=0),
                               atol=1e-5)

    # 4. the method's explainer: one map per image at input size, in [0, 1]
    layer = method.layer_for(study, options)
    e = method.explain(best, x, layer=layer, class_index=data["val"].labels)
    assert e.heatmaps.shape == (4, SIZE, SIZE)
    assert 0 <= e.heatmaps.min() and e.heatmaps.max() <= 1

    # 5. SavedModel export with the method's preprocessor in the graph
    from gfsr_tf.export import export_saved_model
    path = export_saved_model(best, tmp_path / "serving" / "1", layer=layer,
                              preprocessor=method.preprocessor_for(options), channels=1)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        images=tf.constant(data["val"].images.astype(np.float32)))["probabilities"].numpy()
    p = best.predict(x, verbose=0)
    # binary heads serve [1 - p, p]; one sigmoid per class (multilabel) serves p itself
    expected = np.stack([1 - p[:, 0], p[:, 0]], 1) if p.shape[1] == 1 else p
    np.testing.assert_allclose(served, expected, atol=1e-5)


# --- a method the package does not know: a linear probe on pooled pixels ---------------------

@dataclasses.dataclass
class ProbeOptions:
    units: int = 4


class ProbeMethod(Method):
    """Global average pool of the raw pixels -> Dense -> logits -> sigmoid. Its Grad-CAM layer is
    a 1x1 conv right after the input."""
    name = "test_probe"
    config_class = ProbeOptions
    preprocessor = "unit"

    def target_layer(self, study):
        return "probe_conv"

    def build_model(self, study, config, num_classes, input_shape, warnings):
        keras.utils.set_random_seed(study.train.seed)
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(config.units, 1, activation="relu", name="probe_conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        logits = keras.layers.Dense(1, name="logits")(x)
        return keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))

    def make_step(self, model, optimizer, study, config):
        return ClassificationStep(model, optimizer, preprocessor=self.preprocessor,
                                  logits_layer="probe_conv")

    def describe(self, report, variant):
        return ["", f"## {variant}: the test probe", "", "A linear probe on pooled pixels."]


def test_a_method_defined_in_the_tests_runs_a_whole_study(tmp_path):
    from gfsr_tf.study import run_study
    register(ProbeMethod())
    assert "test_probe" in method_names()
    config = preset("smoke")
    config.variants = (VariantConfig("probe", "test_probe", {"units": 3}),
                       VariantConfig("baseline", "baseline"))
    config.model.backbone = "small_cnn"
    report = run_study(config, tmp_path, verbose=0)
    run = tmp_path / config.name
    probe = report["probe"]
    assert probe["training"]["method"] == "test_probe" and probe["training"]["options"] == {"units": 3}
    assert set(probe["metrics"]) == {"test_correlated", "test_decorrelated"}
    labels = make_split(config.benchmark, "test_decorrelated", 8).labels
    probs = np.asarray(probe["predictions"]["test_decorrelated"])
    assert probe["metrics"]["test_decorrelated"]["accuracy"] == pytest.approx(
        np.mean((probs >= 0.5) == labels))
    assert probe["localization"]["layer"] == "probe_conv"
    card = json.loads((run / "probe" / "best.json").read_text())
    assert card["method"] == "test_probe" and card["preprocessor"] == "unit"
    assert "comparisons" in report and "probe" in report["comparisons"]
    assert "## probe: the test probe" in (run / "summary.md").read_text()
    model = keras.models.load_model(run / "probe" / "best.keras")
    assert model.get_layer("probe_conv").kernel.shape[-1] == 3


def test_unknown_method_or_option_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match=r"unknown gfsr option\(s\) \['lamda'\]"):
        get_method("gfsr").make_config({"lamda": 1})
