"""JTT (Liu et al. 2021): the upsampled training set by hand; in a study, the error set is the
identification model's mistakes, the final model is ERM from the same initial weights on the
upsampled set (equal to training it by hand), and a rerun of the finished study keeps it."""
import dataclasses
import json

import keras
import numpy as np
import pytest

from gfsr_tf.config import VariantConfig
from gfsr_tf.methods import get_method
from gfsr_tf.methods.jtt import upsampled_index
from gfsr_tf.presets import preset
from gfsr_tf.preprocessing import get_preprocessor


def test_the_upsampled_set_by_hand_and_options_are_checked():
    np.testing.assert_array_equal(upsampled_index(np.array([1, 3]), 5, 3),
                                  [0, 1, 2, 3, 4, 1, 1, 3, 3])
    np.testing.assert_array_equal(upsampled_index(np.array([], int), 3, 6), [0, 1, 2])
    with pytest.raises(ValueError, match="must be >= 1"):
        get_method("jtt").make_config({"upweight": 0})
    study = preset("smoke")
    with pytest.raises(ValueError, match="exceeds the study's epochs"):
        get_method("jtt").check(study, get_method("jtt").make_config(
            {"identification_epochs": study.train.epochs + 1}))


@pytest.mark.slow   # two small studies (~40 s)
def test_jtt_in_a_study_upsamples_the_identification_models_errors(tmp_path):
    from gfsr_tf.study import run_study
    from gfsr_tf.study.data import load_data
    from gfsr_tf.training import Trainer
    config = preset("smoke")
    config.model.backbone = "small_cnn"
    config.train = dataclasses.replace(config.train, epochs=3, keep_checkpoints=True)
    config.variants = (VariantConfig("baseline", "baseline"),
                       VariantConfig("jtt", "jtt", {"identification_epochs": 1, "upweight": 3}))
    config.evaluators = ("classification",)
    config.name = "jtt_study"
    report = run_study(config, tmp_path, verbose=0, render=False)
    run = tmp_path / "jtt_study"
    stage = report["jtt"]["training"]["jtt"]
    data = load_data(config, [])
    train = data["train"]
    x = np.asarray(get_preprocessor("resnet50_caffe")(train.images))
    # the identification model = the baseline after epoch 1 (its snapshot)
    f_id = keras.models.load_model(run / "baseline" / "snapshots" / "epoch-1" / "best.keras")
    errors = np.flatnonzero((f_id.predict(x, verbose=0)[:, 0] > 0.5) != train.labels)
    saved = json.loads((run / "jtt" / "jtt_final" / "error_set.json").read_text())["indices"]
    assert saved == errors.tolist() and stage["error_set"] == len(errors)
    assert stage["final_training_images"] == len(train) + 2 * len(errors)
    assert sum(g["in_error_set"] for g in stage["error_set_by_group"].values()) == len(errors)
    assert len(stage["final_history"]) == 3
    # the final model by hand: the same initial weights, ERM on the upsampled set
    method = get_method("jtt")
    options = method.make_config({"identification_epochs": 1, "upweight": 3})
    by_hand = method.build_model(config, options, 2, x.shape[1:], [])
    Trainer(by_hand, tmp_path / "by_hand", method.step_factory(options, config),
            train=config.train, verbose=0).fit(
        train.subset(upsampled_index(errors, len(train), 3)), data["val"])
    final = keras.models.load_model(run / "jtt" / "best.keras")
    for a, b in zip(final.weights, by_hand.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    assert report["jtt"]["training"]["seconds"] > sum(
        h["seconds"] for h in report["jtt"]["training"]["history"])
    # a rerun of the finished study keeps the final model (the stage is idempotent)
    again = run_study(config, tmp_path, verbose=0, render=False)
    assert again["jtt"]["training"]["jtt"]["error_set"] == len(errors)
    for a, b in zip(final.weights, keras.models.load_model(run / "jtt" / "best.keras").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
