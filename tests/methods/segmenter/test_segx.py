"""SegX / SegU: the segmentation loss, the U-Net, expected gradients, the masked-explanation and
certainty metrics, multi-label heads and thresholds, and the study as users run it."""
import json
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from gfsr_tf.metrics import iou_top_k
from gfsr_tf.metrics.classification import multilabel_metrics, multilabel_thresholds
from gfsr_tf.metrics.segx import (certainty_summary, iou_ceiling, segu_certainty,
                                     segx_prediction, segx_scores)
from gfsr_tf.losses.segmentation import bce_dice_loss, soft_dice_loss
from gfsr_tf.models.unet import build_unet
from gfsr_tf.training.step import classification_loss

ROOT = REPO


# --- segmentation loss ---------------------------------------------------------------------

def test_soft_dice_on_a_hand_worked_2x2_case_and_its_gradient():
    p = np.array([[[0.9, 0.2], [0.6, 0.1]]], np.float32)
    g = np.array([[[1, 0], [1, 0]]], np.float32)
    # sum pg = 0.9 + 0.6 = 1.5; sum p = 1.8; sum g = 2 -> 1 - (3 + 1) / (1.8 + 2 + 1) = 1 - 4/4.8
    assert float(soft_dice_loss(p, g)[0]) == pytest.approx(1 - 4 / 4.8, abs=1e-6)
    # empty target and empty prediction: no error, loss 0
    assert float(soft_dice_loss(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))[0]) == 0.0
    # gradient of lambda * BCE + (1 - lambda) * Dice w.r.t. the logits vs central differences
    z = tf.Variable(np.log(p / (1 - p)).astype(np.float64))
    g64 = tf.constant(g, tf.float64)

    def f(logits):
        return tf.reduce_sum(bce_dice_loss(tf.cast(logits, tf.float32), g64, 0.3))
    with tf.GradientTape() as tape:
        loss = f(z)
    grad = tape.gradient(loss, z).numpy()
    eps, numeric = 1e-3, np.zeros_like(grad)
    for idx in np.ndindex(grad.shape):
        d = np.zeros(grad.shape)
        d[idx] = eps
        numeric[idx] = (float(f(z + d)) - float(f(z - d))) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=2e-4)


def test_unet_has_segx_parameter_count_and_refuses_sides_not_divisible_by_16():
    model = build_unet((32, 32, 3))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 7_763_041
    assert model.output.shape[1:] == (32, 32, 1)
    with pytest.raises(ValueError, match="divisible by 16.*\\(40, 40\\)"):
        build_unet((40, 40, 3))


# --- expected gradients --------------------------------------------------------------------

def _linear(shape, k=3, activation=None):
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape)
    out = keras.layers.Dense(k, activation=activation)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, out)


def test_expected_gradients_on_a_linear_model_is_w_times_x_minus_the_drawn_background():
    from gfsr_tf.saliency.expected_gradients import attributions
    model = _linear((4, 4, 2))
    rng = np.random.default_rng(0)
    background = rng.random((5, 4, 4, 2), np.float32)
    x = rng.random((2, 4, 4, 2), np.float32)
    phi = attributions(model, x, [1, 2], background, n_samples=30, seed=3)
    w = model.layers[-1].kernel.numpy()
    for i, c in enumerate([1, 2]):
        # shap's draws: numpy's global generator seeded per call, (index, t) per sample
        np.random.seed(3 + i)
        drawn = []
        for _ in range(30):
            drawn.append(background[np.random.choice(5)])
            np.random.uniform()
        np.testing.assert_allclose(phi[i], w[:, c].reshape(4, 4, 2) * (x[i] - np.mean(drawn, 0)),
                                   atol=1e-5)


def test_expected_gradients_sum_to_the_output_difference_on_a_nonlinear_model():
    """Completeness: sum(phi) = f(x) - E_b f(b) in expectation (Monte Carlo, 2,000 draws)."""
    from gfsr_tf.saliency.expected_gradients import attributions
    keras.utils.set_random_seed(2)
    inputs = keras.Input((3, 3, 1))
    h = keras.layers.Dense(6, activation="tanh")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(h))
    rng = np.random.default_rng(1)
    background = rng.normal(0, 1, (8, 3, 3, 1)).astype(np.float32)
    x = rng.normal(0, 1, (1, 3, 3, 1)).astype(np.float32)
    phi = attributions(model, x, [1], background, n_samples=2000, seed=0, batch_size=500)
    expected = float(model(x)[0, 1]) - float(np.mean(model(background)[:, 1]))
    assert abs(expected) > 0.05           # a case where the sum says something
    assert phi.sum() == pytest.approx(expected, abs=0.02)


def test_explain_posthoc_expected_gradients_gives_normalised_maps_of_the_input_size():
    from gfsr_tf.saliency import explain_posthoc
    model = _linear((8, 8, 3), 2, "sigmoid")
    x = np.random.default_rng(0).random((3, 8, 8, 3), np.float32)
    e = explain_posthoc(model, x, "expected_gradients", class_index=[0, 1, 1], n_samples=8)
    assert e.heatmaps.shape == (3, 8, 8)
    np.testing.assert_allclose(e.heatmaps.reshape(3, -1).max(1), 1.0)


# --- SegX and SegU -------------------------------------------------------------------------

def _ramp_and_half_mask():
    ramp = np.arange(100, dtype=np.float32).reshape(1, 10, 10)    # values 0..99 row-major
    seg = np.zeros((1, 10, 10), bool)
    seg[:, :, :5] = True                                           # the left half
    return ramp, seg


def test_both_segx_orders_on_a_ramp_with_a_half_mask():
    ramp, seg = _ramp_and_half_mask()
    # mask first: the masked map is 0 on the right half and keeps the left values 10r + c
    # (c < 5); sorted, positions 94 and 95 (of 0..99) hold 84 and 90, so numpy's 95th percentile
    # is 84 + 0.05 * 6 = 84.3 and the pixels above it are 90..94: row 9, columns 0..4
    first = segx_prediction(ramp, seg, "mask_first")
    assert first.sum() == 5 and set(ramp[first].tolist()) == {90.0, 91.0, 92.0, 93.0, 94.0}
    # binarise first: T5(ramp) = values > 94.05 -> 95..99 (5 pixels, row 9 columns 5..9),
    # all on the right half -> nothing left inside the segmentation
    assert segx_prediction(ramp, seg, "binarise_first").sum() == 0
    seg_right = ~seg
    assert segx_prediction(ramp, seg_right, "binarise_first").sum() == 5


def test_an_empty_segmentation_gives_segx_iou_0_and_certainty_0():
    ramp, _ = _ramp_and_half_mask()
    truth = np.zeros((1, 10, 10), bool)
    truth[0, 9, 5:] = True
    empty = np.zeros((1, 10, 10), bool)
    scores = segx_scores(ramp, empty, truth)
    assert scores["original"]["iou_top5"][0] == 1.0          # T5 is exactly the truth
    assert scores["segx"]["iou_top5"][0] == 0.0               # not NaN: the case is kept
    c = segu_certainty(ramp, empty)
    assert c["c_iou"][0] == 0.0 and c["c_auitc"][0] == 0.0
    # an empty ground truth is the only undefined case
    assert np.isnan(segx_scores(ramp, empty, empty)["segx"]["iou_top5"][0])


def test_c_iou_is_iou_top_k_with_empty_zero():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 16, 16)).astype(np.float32)
    seg = rng.random((6, 16, 16)) > 0.7
    expected = iou_top_k(maps, seg, empty="zero")["ious"]
    np.testing.assert_array_equal(segu_certainty(maps, seg)["c_iou"], expected)
    assert iou_ceiling(seg) == pytest.approx(np.mean(0.05 / seg.reshape(6, -1).mean(1)))


def test_segx_bad_inputs_are_refused_with_clear_errors():
    maps = np.zeros((2, 8, 8), np.float32)
    with pytest.raises(ValueError, match="2 maps, 2 segmentations and 3 ground-truth"):
        segx_scores(maps, np.zeros((2, 8, 8)), np.zeros((3, 8, 8)))
    maps[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segx_scores(maps, np.zeros((2, 8, 8)), np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="order"):
        segx_prediction(np.zeros((1, 8, 8)), np.ones((1, 8, 8)), "sideways")
    # a segmentation at another size is resized (nearest) to the ground truth's
    big = np.zeros((1, 16, 16), bool)
    big[:, :, :8] = True
    ramp, _ = _ramp_and_half_mask()
    out = segx_scores(np.kron(ramp, np.ones((1, 1, 1))), big, np.ones((1, 10, 10), bool))
    assert np.isfinite(out["segx"]["iou_top5"][0])


def test_certainty_summary_separates_tp_from_fp_and_survives_no_pairs():
    correct = np.array([1, 1, 1, 0, 0])
    summary = certainty_summary(correct, {"c_iou": np.array([.5, .4, .3, .2, .35])},
                                n_resamples=200)
    assert summary["c_iou"]["correct"] == pytest.approx(0.4)
    assert summary["c_iou"]["auroc"]["estimate"] == pytest.approx(5 / 6)   # 5 of 6 pairs ordered
    assert summary["c_iou"]["risk_coverage"]["risk"][:3] == [0.0, 0.0, 1 / 3]
    empty = certainty_summary(np.zeros(0, int), {"c_iou": np.zeros(0)})
    assert empty["n_correct"] == 0 and np.isnan(empty["c_iou"]["auroc"]["estimate"])


# --- multi-label heads -----------------------------------------------------------------------

def test_per_class_max_f1_threshold_and_a_class_without_positives():
    sets = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [1, 0]])
    probs = np.array([[.9, .1], [.4, .2], [.5, .3], [.1, .4], [.7, .5]])
    out = []
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        tau = multilabel_thresholds(sets, probs, "f1", ["a", "b"], out)
    # p > 0.1 keeps .9 .4 .5 .7 -> TP 3, FP 1, F1 6/7 (the max; p > 0.4 gives 4/5, > 0.5: 4/5)
    assert tau[0] == pytest.approx(0.1)
    assert tau[1] == 0.5 and "'b' has no positives" in out[0]
    youden = multilabel_thresholds(sets[:, :1], probs[:, :1], "youden")
    assert youden[0] == pytest.approx(0.5)    # p > 0.5: sensitivity 2/3, specificity 1 (J 2/3)


def test_multilabel_bce_is_the_hand_value_and_metrics_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score
    logits = tf.constant([[2.0, -1.0, 0.0]])
    sets = tf.constant([[1, 0, 1]])
    hand = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log(2.0)])
    assert float(classification_loss(logits, tf.constant([0]), True, sets)[0]) == \
        pytest.approx(hand, rel=1e-6)
    rng = np.random.default_rng(0)
    y = (rng.random((60, 2)) > 0.5).astype(int)
    p = np.clip(y * 0.3 + rng.random((60, 2)) * 0.7, 0, 1)
    m = multilabel_metrics(y, p, [0.5, 0.5], ["a", "b"], n_resamples=50)
    assert m["per_class"]["a"]["auroc"]["estimate"] == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]))
    assert m["per_class"]["b"]["auprc"]["estimate"] == pytest.approx(
        average_precision_score(y[:, 1], p[:, 1]))
    sens = ((p[:, 0] > 0.5) & (y[:, 0] == 1)).sum() / y[:, 0].sum()
    assert m["per_class"]["a"]["sensitivity"]["estimate"] == pytest.approx(sens)


@pytest.mark.slow  # ~11 s (DenseNet121); the ResNet50 multi-label path stays in the default suite
def test_densenet121_multilabel_head_with_its_preprocessor_and_gradcam_layer():
    from gfsr_tf.methods import get_method
    from gfsr_tf.models import build_classifier
    from gfsr_tf.saliency import explain
    method = get_method("multilabel")
    options = method.make_config({"backbone": "densenet121"})
    assert method.preprocessor_for(options) == "torch" and method.layer_for(None, options) == "relu"
    model = build_classifier(3, (32, 32, 3), None, backbone="densenet121", head="multilabel",
                             pooling="avg", dense_units=256, dropout=0.0)
    assert model.get_layer("probabilities").activation.__name__ == "sigmoid"
    assert model.output.shape[-1] == 3 and model.get_layer("dense").units == 256
    x = np.random.default_rng(0).normal(0, 1, (2, 32, 32, 3)).astype(np.float32)
    e = explain(model, x, layer="relu", class_index=[0, 2])
    assert e.heatmaps.shape == (2, 32, 32)
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(e.probabilities, p, atol=1e-5)   # sigmoids, not a softmax


def test_multilabel_benchmark_keeps_the_benchmark_images_and_ties_the_marker_to_finding_1():
    from gfsr_tf.config import BenchmarkConfig
    from gfsr_tf.datasets.synthetic import make_split
    plain = make_split(BenchmarkConfig(image_size=32), "train", 60)
    multi = make_split(BenchmarkConfig(image_size=32, second_finding=True), "train", 60)
    basal = multi.label_sets[:, 2].astype(bool)
    assert 15 < basal.sum() < 45
    np.testing.assert_array_equal(multi.images[~basal], plain.images[~basal])
    assert (multi.images[basal] != plain.images[basal]).any((1, 2, 3)).all()
    np.testing.assert_array_equal(multi.label_sets[:, 1], plain.labels)
    assert multi.class_masks[basal, 2].any((1, 2)).all()
    assert not (multi.class_masks[:, 2] & (multi.lungs < 0.5)).any()   # inside a lung
    # the marker follows pneumonia, not the second finding
    rate = [multi.has_marker[basal].mean(), multi.has_marker[~basal].mean()]
    assert abs(rate[0] - rate[1]) < 0.3 and multi.has_marker[plain.labels == 1].mean() > 0.8


# --- training the segmenter through the generic loop -----------------------------------------

def test_segmenter_stops_early_on_val_loss_and_a_rerun_reads_it_as_finished(tmp_path):
    from gfsr_tf.config import BenchmarkConfig, TrainConfig
    from gfsr_tf.datasets.synthetic import make_split
    from gfsr_tf.methods import get_method
    from gfsr_tf.methods.segmenter import region_of
    from gfsr_tf.presets import preset
    from gfsr_tf.training import Trainer
    study = preset("segx", smoke=True)
    study.train = TrainConfig(epochs=6, batch_size=4, learning_rate=1e-12, monitor="val_loss",
                              early_stopping_patience=2)
    study.model.bn_momentum = 1.0    # frozen running statistics: nothing can move val_loss
    method = get_method("segmenter")
    options = method.make_config({"base": 4})
    train = make_split(BenchmarkConfig(image_size=16), "train", 8)
    val = make_split(BenchmarkConfig(image_size=16), "val", 4)

    def fit():
        model = method.build_model(study, options, 2, (16, 16, 1), [])
        return Trainer(model, tmp_path, method.step_factory(options, study), train=study.train,
                       verbose=0).fit(train, val, {"mask": region_of(train, "lungs")})
    history = fit()
    # val_loss cannot improve after epoch 1 (the best, kept on ties): stop after epoch 1 + 2
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["stopped_early"]
    assert [bool(h.get("best")) for h in history] == [True, False, False]
    assert {"val_loss", "val_dice", "val_iou"} <= set(history[-1])
    assert [h["epoch"] for h in fit()] == [h["epoch"] for h in history]   # finished, not retrained


# --- the study as users run it ---------------------------------------------------------------

def test_segx_bad_input_exits_1_with_one_line(tmp_path):
    bad = subprocess.run([sys.executable, str(ROOT / "experiments" / "segx.py"), "--smoke",
                          "--multilabel", "--data-dir", str(tmp_path), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.slow  # ~20 s; the HAM10000-format smoke (test_real_data_studies) stays in the suite
def test_segx_smoke_experiment_writes_both_tables(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "segx.py"), "--smoke",
                        "--quiet", "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "segx_smoke"
    report = json.loads((run / "report.json").read_text())
    models = report["segx"]["models"]
    assert len(models) == 2 and 0 <= report["segx"]["segmenter"]["test"]["dice"] <= 1
    for model in models.values():
        for explainer in ("gradcam", "expected_gradients"):
            cell = model["explainers"][explainer]
            assert cell["n_pairs"] > 0
            assert set(cell["iou_top5"]) >= {"original", "segx", "segx_binarise_first"}
            assert {"c_iou", "c_auitc", "certainty_auroc"} <= set(cell)
    summary = (run / "summary.md").read_text()
    assert "## Table 3" in summary and "## Table 4" in summary
    assert (run / "segx_overlays.png").exists() and (run / "risk_coverage.png").exists()


def test_summary_renders_a_model_without_predicted_positive_pairs():
    from gfsr_tf.methods.segmenter.report import segx_markdown
    ci = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    metrics = {k: ci for k in ("auroc", "auprc", "f1", "sensitivity", "specificity")}
    report = {"segx": {"eval_split": "test", "segmenter": {
        "region": "lungs", "test": {"dice": 0.9, "iou": 0.8, "n": 4}, "epochs": 1,
        "seconds": 1.0}, "models": {"m": {
            "classification": {"per_class": {"a": metrics}, "macro": metrics,
                               "thresholds": {"a": 0.5}},
            "training": {"seconds": 1.0},
            "explainers": {"gradcam": {"n_pairs": 0, "n_table3": 0, "seconds": 0.0}}}}}}
    text = "\n".join(segx_markdown(report))
    assert "| m | gradcam | 0 | – |" in text and "## Table 4" in text
