"""Pham et al.'s prompted gaze-intensity heatmaps: the losses' hand values, the sample windows,
the predictor's wiring (alpha, fusion, the no-alpha ablation), masking, controllability, an
overfit that must put every prompt's map on the right side, the `.keras` round trip in a fresh
process, bad input, and the experiment as a user runs it."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from gfsr_tf.config import BenchmarkConfig, TrainConfig
from gfsr_tf.datasets.base import ImageSet
from gfsr_tf.datasets.egd_cxr import heart_from_mediastinum
from gfsr_tf.methods.gaze_intensity.prompts import (balance, last_mention, prompt_samples, weak_label,
                                           window_fixations)
from gfsr_tf.datasets.gaze_sim import make_gaze_split, scaled_sigma
from gfsr_tf.metrics.heatmaps import controllability, mass_centres
from gfsr_tf.methods.gaze_intensity.loss import intensity_loss, logit_l2_loss
from gfsr_tf.losses.segmentation import soft_dice_loss
from gfsr_tf.methods import get_method
from gfsr_tf.methods.gaze_intensity import foreground_of
from gfsr_tf.methods.gaze_intensity.model import (build_intensity_predictor, predict_maps)
from gfsr_tf.presets import preset
from gfsr_tf.preprocessing import raw_rgb
from gfsr_tf.methods.gaze_intensity.study import gate
from gfsr_tf.training import Trainer

ROOT = REPO
TINY = dict(dim=32, depth=2, heads=2, patch=4, weights=None)


def test_losses_hand_values():
    # a = (0, 0.5, 1), logits 0: targets logit(0.01), 0, logit(0.99) = -+4.59512
    l2 = logit_l2_loss(tf.zeros((1, 3)), tf.constant([[0.0, 0.5, 1.0]]))
    assert float(l2[0]) == pytest.approx(2 * np.log(99) ** 2 / 3, abs=1e-4)
    assert float(l2[0]) == pytest.approx(14.0768, abs=1e-3)
    dice = soft_dice_loss(tf.constant([[0.5, 0.5]]), tf.constant([[1.0, 0.0]]))
    assert float(dice[0]) == pytest.approx(1 / 3, abs=1e-4)      # 1 - (2*0.5 + 1) / (1 + 1 + 1)
    terms = intensity_loss(tf.zeros((1, 2)), tf.constant([[0.5, 0.5]]),
                           tf.constant([[1.0, 0.0]]), (1.0, 2.0, 3.0))
    assert float(terms["ce"][0]) == pytest.approx(np.log(2), abs=1e-5)
    assert float(terms["loss"][0]) == pytest.approx(0 + 2 * np.log(2) + 3 / 3, abs=1e-4)


def test_time_window_keeps_fixations_up_to_the_last_left_lung_sentence():
    transcript = [("the heart size is normal.", 1.2), ("there is an opacity in the left lung.", 2.5),
                  ("no effusion.", 6.0)]
    mention = last_mention(transcript, "left_lung")
    assert mention == ("there is an opacity in the left lung.", 2.5)
    assert last_mention(transcript, "heart") is None          # no "enlarged"/"cardiomegaly"
    assert last_mention(transcript, "right_lung") is None
    fx = np.array([[10, 10, 0.2, t] for t in (0.5, 1.0, 2.0, 5.0)], float)
    kept = window_fixations(fx, mention[1], np.ones((32, 32)), (32, 32))
    np.testing.assert_array_equal(kept[:, 3], [0.5, 1.0, 2.0])
    outside = np.zeros((32, 32))
    outside[:, 16:] = 1                                        # the fixations sit at x = 10
    assert len(window_fixations(fx, 2.5, outside, (32, 32))) == 0
    assert weak_label("there is an opacity in the left lung.") == 1
    assert weak_label("The left lung is clear.") == 0
    assert weak_label("the heart is not enlarged.") == 0


def test_heart_is_the_mediastinum_without_its_top_third():
    mediastinum = np.zeros((12, 5), bool)
    mediastinum[2:11, 1:4] = True                              # 9 rows
    heart = heart_from_mediastinum(mediastinum)
    assert heart[2:5].sum() == 0 and heart[5:11, 1:4].all()
    assert heart.sum() == 6 * 3


@pytest.fixture(scope="module")
def tiny_model():
    return build_intensity_predictor((32, 32, 3), seed=0, **TINY)


def test_fusion_leaves_alpha_untouched_and_patch_tokens_changed(tiny_model):
    m = tiny_model
    probe = keras.Model(m.inputs, [m.get_layer("adapter_tokens").output,
                                   m.get_layer("fusion1_tokens_out").output,
                                   m.get_layer("adapter1_residual2").output,
                                   m.get_layer("fusion2_tokens_out").output])
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    before, fused1, layer1, fused2 = [np.asarray(t) for t in probe(
        {"image": x, "prompt": np.array([0, 1, 2], np.int32)})]
    alpha = np.asarray(m.get_layer("adapter_tokens").alpha)[0]
    np.testing.assert_array_equal(fused1[:, -1], np.broadcast_to(alpha, (3, 32)))
    np.testing.assert_array_equal(fused2[:, -1], layer1[:, -1])
    assert np.abs(fused1[:, :-1] - before[:, :-1]).min() > 0    # every patch token moved


def test_no_alpha_map_is_the_feature_mean_of_the_tokens():
    m = build_intensity_predictor((32, 32, 3), seed=1, use_alpha=False, **TINY)
    probe = keras.Model(m.inputs, [m.get_layer("adapter_norm").output,
                                   m.get_layer("decoder_grid").output])
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    inputs = {"image": x, "prompt": np.array([0, 2], np.int32)}
    tokens, grid = [np.asarray(t) for t in probe(inputs)]
    np.testing.assert_allclose(grid.reshape(2, -1), tokens[:, :-1].mean(-1), atol=1e-6)
    # constant tokens v (the final norm's scale 0, offset v): the whole map is mean(v)
    norm = m.get_layer("adapter_norm")
    v = np.linspace(-1, 2, 32).astype(np.float32)
    norm.set_weights([np.zeros(32, np.float32), v])
    logits = np.asarray(keras.Model(m.inputs, m.get_layer("intensity_logits").output)(inputs))
    np.testing.assert_allclose(logits, np.full((2, 32, 32, 1), v.mean()), atol=1e-6)


def test_gated_masking_and_area_ratio():
    images = np.full((1, 4, 4, 1), 200, np.uint8)
    a = np.zeros((1, 4, 4), np.float32)
    a[0, :, :2] = 0.8
    a[0, 0, 2] = 0.5                                            # exactly 0.5: gated out
    out = gate(images, a, "gated")
    assert np.array_equal(out[0, ..., 0] > 0, a[0] > 0.5)
    np.testing.assert_array_equal(out[0, :, :2, 0], 160)
    assert np.mean(a > 0.5) == 0.5                              # half-gated: area ratio 0.5
    assert gate(images, a, "soft")[0, 0, 2, 0] == 100
    with pytest.raises(ValueError, match="masking"):
        gate(images, a, "hard")


def test_mass_centres_and_controllability_on_constructed_maps():
    maps = np.zeros((2, 8, 8))
    maps[0, 2, 6] = 1                                           # image-right
    maps[1, 5, 1] = 1                                           # image-left
    np.testing.assert_allclose(mass_centres(maps), [[2.5, 6.5], [5.5, 1.5]])
    heart = np.zeros((2, 8, 8))
    heart[:, 4:7, 2:6] = 1
    hearts = np.zeros((2, 8, 8))
    hearts[0, 5, 3] = 1                                         # inside the box
    hearts[1, 1, 1] = 1                                         # outside
    out = controllability({"left_lung": maps, "right_lung": maps, "heart": hearts}, heart)
    assert [out["per_prompt"][r]["share"] for r in ("left_lung", "right_lung", "heart")] == \
        [0.5, 0.5, 0.5]
    assert out["overall"] == 0.5 and out["met"] is False
    assert controllability({"left_lung": np.zeros((1, 8, 8))}, heart[:1])["overall"] == 0


def test_bad_input_is_one_clear_error(tiny_model):
    x = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="prompt id"):
        predict_maps(tiny_model, x, 3)
    with pytest.raises(ValueError, match="not divisible by the patch"):
        build_intensity_predictor((64, 64, 3), patch=6, weights=None, dim=12, depth=1, heads=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        foreground_of(np.full((1, 4, 4), 1.5))
    data = make_gaze_split(BenchmarkConfig(image_size=32, seed=0), "val", 3)
    wrong = {**data.regions, "heart": data.regions["heart"][:, :16]}
    bad = ImageSet(data.images, data.labels, data.class_names, gaze=data.gaze,
                   lesions=data.lesions, names=data.names, regions=wrong,
                   fixations=data.fixations, transcripts=data.transcripts,
                   original_shapes=data.original_shapes)
    with pytest.raises(ValueError, match="regions\\[heart\\]"):
        prompt_samples(bad)
    silent = ImageSet(data.images, data.labels, data.class_names, gaze=data.gaze,
                      regions=data.regions, fixations=data.fixations,
                      transcripts=[[("no comment.", 9.0)]] * 3,
                      original_shapes=data.original_shapes, names=data.names)
    counts = {}
    with pytest.raises(ValueError, match="no prompted gaze sample remains"):
        prompt_samples(silent, counts=counts)
    assert counts == {"no_mention": 9}
    with pytest.raises(ValueError, match="unknown gaze_intensity option"):
        get_method("gaze_intensity").make_config({"alpha": 1})


def _sim_samples(n=8, size=32):
    data = make_gaze_split(BenchmarkConfig(image_size=size, seed=0), "train", n,
                           weighting="count")
    return data, prompt_samples(data, sigma_px=scaled_sigma(150, size), weighting="count")


def test_simulated_samples_are_per_region_and_balanced():
    data, samples = _sim_samples(24)
    assert len(samples) == 3 * 24                    # every region is dictated in the simulation
    heart = samples.prompts == 0
    np.testing.assert_array_equal(samples.labels[heart], data.labels == 1)   # CHF cases
    assert samples.gaze.max() == 1 and np.all(np.round(samples.gaze * 255) % 1 == 0)
    # a lung map keeps only fixations inside that lung: its mass centre is on the lung's side
    lung = mass_centres(samples.gaze[samples.prompts == 1])[:, 1]
    assert np.all(lung > 16)
    balanced = balance(samples)
    for p in range(3):
        labels = balanced.labels[balanced.prompts == p]
        assert labels.sum() * 2 == len(labels) > 0


@pytest.mark.slow  # ~22 s of training; the suite budget (10 min on 2 cores) needs the room
def test_tiny_adapter_overfits_with_side_correct_maps(tmp_path):
    data, samples = _sim_samples(8)
    study = preset("smoke")
    study.model.weights, study.model.bn_momentum = None, 0.5
    study.train = TrainConfig(epochs=15, batch_size=8, seed=0, learning_rate=1e-3,
                              optimizer="adamw", weight_decay=1e-4, monitor="last")
    method = get_method("gaze_intensity")
    options = method.make_config({k: v for k, v in TINY.items() if k != "weights"})
    model = method.build_model(study, options, 2, (32, 32, 3), [])
    history = Trainer(model, tmp_path / "run", method.step_factory(options, study),
                      train=study.train, verbose=0).fit(
        samples, samples, {"intensity": samples.gaze, "foreground": foreground_of(samples.gaze)})
    assert len(history) == 15                                  # 45 steps of 8 samples
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    x = np.asarray(raw_rgb(data.images))
    maps = {r: predict_maps(model, x, p) for p, r in enumerate(("heart", "left_lung",
                                                                "right_lung"))}
    out = controllability(maps, data.regions["heart"])
    assert out["overall"] == 1.0, out
    # the .keras round trip in a process that imports only gfsr_tf.models (which registers the
    # predictor's layer from its method folder): same logits
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x[:4])
    expected = np.asarray(model({"image": x[:4], "prompt": np.array([0, 1, 2, 0], np.int32)},
                                training=False))
    code = ("import numpy as np, keras, gfsr_tf.models; "
            f"m = keras.models.load_model(r'{tmp_path / 'm.keras'}'); "
            f"x = np.load(r'{tmp_path / 'x.npy'}'); "
            "p = m({'image': x, 'prompt': np.array([0, 1, 2, 0], np.int32)}, training=False); "
            f"np.save(r'{tmp_path / 'y.npy'}', np.asarray(p))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_experiment_bad_rows_are_one_line_and_exit_1():
    script = ROOT / "experiments" / "gaze_intensity.py"
    bad = subprocess.run([sys.executable, str(script), "--rows", "ours,nope", "--smoke"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1    # one line of ours (TF may log before it)
    assert bad.stderr.strip().splitlines()[-1].startswith("error: unknown row(s) nope; choose from")
    assert "Traceback" not in bad.stderr


@pytest.mark.slow  # three smoke rows in a subprocess: ~25 s
def test_experiment_smoke_as_a_user_runs_it(tmp_path):
    script = ROOT / "experiments" / "gaze_intensity.py"
    run = subprocess.run([sys.executable, str(script), "--smoke", "--rows", "clf-pred,clf-gt",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    root = tmp_path / "gaze_intensity_smoke"
    report = json.loads((root / "report.json").read_text())
    assert set(report["rows"]) == {"ours", "clf-pred", "clf-gt"}     # ours runs first
    ctrl = report["controllability"]
    assert set(ctrl["per_prompt"]) == {"heart", "left_lung", "right_lung"}
    assert ctrl["per_prompt"]["heart"]["n"] == 8                      # every test image
    gt = report["rows"]["clf-gt"]
    test = report["data"]["test"]["M"]
    assert gt["scores"]["M"]["n"] == test["samples"]
    assert 0 < gt["area_ratio"] < 1
    text = (root / "results.md").read_text()
    assert "## Table 3" in text and "## Table 8" in text and "| ours | paper |" in text
    assert (root / "panels.png").exists()


def test_weak_labels_from_egd_cxr_transcripts_match_the_simulation(tmp_path):
    """The EGD-CXR path: the simulation written in the EGD-CXR layout, read back, sampled with
    weak labels from the dictation - which must equal the simulation's own labels (its
    sentences say "clear" / "not enlarged" exactly when there is no finding)."""
    from gfsr_tf.datasets.egd_cxr import load_egd_cxr
    from gfsr_tf.datasets.gaze_sim import write_egd_cxr_layout
    config = BenchmarkConfig(image_size=32, n_train=9, n_val=3, n_test=3, seed=0)
    write_egd_cxr_layout(tmp_path, config)
    sigma = scaled_sigma(150, 32)
    truth = {}                    # the in-memory simulation (it knows the lesions)
    for split in ("train", "val", "test"):
        s = prompt_samples(make_gaze_split(config, split, weighting="count"), sigma_px=sigma,
                           weighting="count")
        truth.update({n: (label, m) for n, label, m in zip(s.names, s.labels, s.gaze)})
    splits = load_egd_cxr(tmp_path, 32, sigma_px=sigma, weighting="count")
    n = 0
    for data in splits.values():
        weak = prompt_samples(data, labels="weak", sigma_px=sigma, weighting="count")
        assert len(weak) == 3 * len(data)
        for name, label, m in zip(weak.names, weak.labels, weak.gaze):
            assert label == truth[name][0], name
            np.testing.assert_allclose(m, truth[name][1], atol=1 / 255 + 1e-6)
        n += int(weak.labels.sum())
    assert n > 0                                   # findings occur


def test_smoke_results_say_they_are_a_smoke_run():
    from gfsr_tf.methods.gaze_intensity.study import markdown
    report = {"rows": {}, "warnings": [], "timing": {"total_seconds": 1.0}, "data": {},
              "config": {"seed": 0, "image_size": 32, "data_dir": None, "smoke": True}}
    assert "SMOKE RUN" in markdown(report).splitlines()[0]
    report["config"]["smoke"] = False
    assert "SMOKE" not in markdown(report)
