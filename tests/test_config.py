import dataclasses
import json
import warnings

import pytest

from gfsr_tf.config import StudyConfig, TrainConfig, VariantConfig, set_value
from gfsr_tf.presets import PRESETS, preset


def test_every_preset_builds_and_round_trips_through_json():
    assert {"benchmark", "paper", "smoke", "pneumoniamnist", "retina", "derma", "husky_wolf",
            "egd_cxr"} <= set(PRESETS)
    for name in PRESETS:
        config = preset(name)
        again = StudyConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config, name
    assert preset("retina", smoke=True).name == "retina_gfsr_smoke"


def test_from_dict_drops_unknown_keys_with_a_warning():
    d = preset("benchmark").to_dict()
    d["from_the_future"] = 1
    d["train"]["new_knob"] = 2
    with pytest.warns(UserWarning) as caught:
        config = StudyConfig.from_dict(d)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and "unknown study config keys ['from_the_future']" in messages[0]
    assert "unknown train config keys ['new_knob']" in messages[1]
    assert config == preset("benchmark")


def test_a_model_card_written_before_methods_existed_still_loads():
    old = preset("benchmark").to_dict()
    del old["variants"], old["evaluators"], old["model"]["backbone"]
    old["relevance"] = {"weight": 2.0, "mask_source": "lungs", "second_order": True}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a legacy card is not "unknown": no warning
        config = StudyConfig.from_dict(old)
    assert [(v.name, v.method) for v in config.variants] == [("baseline", "baseline"),
                                                             ("gfsr", "gfsr")]
    assert config.variant("gfsr").options["weight"] == 2.0


def test_configs_validate_on_construction():
    with pytest.raises(ValueError, match="train.epochs must be > 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="variant names must be unique"):
        StudyConfig(variants=(VariantConfig("a", "gfsr"), VariantConfig("a", "baseline")))
    with pytest.raises(ValueError, match="model.backbone"):
        dataclasses.replace(preset("smoke").model, backbone="vgg")
    config = preset("smoke")
    set_value(config, "variants.gfsr.weight", "3")
    set_value(config, "robustness", '["selective_blur"]')
    assert config.variant("gfsr").options["weight"] == 3 and config.robustness == ("selective_blur",)
    with pytest.raises(ValueError, match="no variant 'x'"):
        set_value(config, "variants.x.weight", "1")


def test_study_names_are_checked_before_data_loads(tmp_path):
    from gfsr_tf.study import run_study
    config = preset("smoke")
    config.evaluators = ("classification", "calibration")
    with pytest.raises(ValueError, match=r"unknown evaluator\(s\) \['calibration'\]"):
        run_study(config, tmp_path)
    config = preset("smoke")
    config.robustness = ("rotate",)
    with pytest.raises(ValueError, match=r"unknown robustness test\(s\) \['rotate'\]"):
        run_study(config, tmp_path)
    assert not (tmp_path / config.name).exists()


def test_smoke_rows_keep_their_own_seed():
    """`experiments/gaze_unet.py --smoke` once wrote rows seed0/1/2 that all trained with seed 0:
    make_smoke replaced the TrainConfig after the row's seed was set."""
    from gfsr_tf.methods.gaze_intensity.preset import get_config as gaze_intensity
    from gfsr_tf.presets.gaze_unet import get_config as gaze_unet
    assert [gaze_unet(True, "unet", s).train.seed for s in (0, 1, 2)] == [0, 1, 2]
    assert [gaze_intensity(True, s).seed for s in (0, 1, 2)] == [0, 1, 2]
    from gfsr_tf.presets import preset
    config = preset("benchmark")
    config.train.seed = 7
    from gfsr_tf.presets.common import make_smoke
    assert make_smoke(config).train.seed == 7


def test_the_guided_default_is_the_row_the_study_chose():
    """`gfsr_plus` of the main job (and GuidedModel.gfsr_plus) trains exactly round 5's
    `plus-lambda3-negative-evidence` of the guided-candidates study, whose figures the docs
    quote; paper `gfsr` stays the paper's loss."""
    from gfsr_tf.config import GFSR_PAPER_LOSS
    from gfsr_tf.presets import benchmark, guided_candidates
    assert benchmark.GFSR_PLUS == guided_candidates.CANDIDATES["plus-lambda3-negative-evidence"]
    assert benchmark.GFSR_PLUS["weight"] == 3.0
    assert {k: benchmark.GFSR[k] for k in GFSR_PAPER_LOSS} == GFSR_PAPER_LOSS
