import math

import numpy as np
import pytest

from gfsr_tf.evaluation import binary_metrics, crop_corner, decision_change, hit_rate


def test_binary_metrics_hand_worked():
    labels = [0, 0, 0, 1, 1, 1, 1]
    probs = [0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7]
    m = binary_metrics(labels, probs)
    # predictions: 0 1 0 | 1 0 1 1 -> tn=2 fp=1 fn=1 tp=3
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(2 / 3)
    # AUC: pairs (pos > neg) of 12: 0.8>all3, 0.4>0.1,0.3, 0.9>3, 0.7>3 -> 11/12
    assert m["auc"] == pytest.approx(11 / 12)


def test_single_class_auc_is_nan_not_crash():
    m = binary_metrics([1, 1], [0.2, 0.9])
    assert math.isnan(m["auc"]) and math.isnan(m["specificity"])
    with pytest.raises(ValueError, match="shape"):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0.5, float("nan")])


def test_decision_change_flip_confusion():
    r = decision_change([0, 1, 1, 0, 1], [0, 0, 1, 1, 1], [0.2, 0.8, 0.9, 0.4, 0.7],
                        [0.1, 0.3, 0.9, 0.6, 0.7])
    assert r["flip_rate"] == pytest.approx(0.4) and r["agreement_rate"] == pytest.approx(0.6)
    assert r["flip_confusion"] == [[1, 1], [1, 2]]
    assert r["mean_probability_change"] == pytest.approx((-0.1 - 0.5 + 0 + 0.2 + 0) / 5)


def test_hit_rate_upsamples_and_skips_empty_masks():
    maps = np.zeros((3, 2, 2), np.float32)
    maps[0, 0, 0] = 1      # top-left quadrant
    maps[1, 1, 1] = 1      # bottom-right
    maps[2, 0, 1] = 1
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :2, :2] = True     # hit
    masks[1, :2, :2] = True     # miss
    r = hit_rate(maps, masks)   # third mask empty -> NaN, excluded
    assert r["hit_rate"] == pytest.approx(0.5) and r["n"] == 2 and math.isnan(r["hits"][2])
    assert math.isnan(hit_rate(maps[2:], masks[2:])["hit_rate"])
    # an all-zero map points nowhere: a miss even though its argmax (pixel 0) is in the mask
    assert hit_rate(np.zeros((1, 2, 2)), masks[:1])["hit_rate"] == 0.0


def test_crop_corner_removes_top_left_band():
    images = np.zeros((1, 20, 20, 1), np.uint8)
    images[0, :4, :4] = 255          # a "marker" in the corner
    images[0, 10:, 10:] = 100        # "anatomy" away from the corner
    out = crop_corner(images, 0.25)   # pad: bands refilled with the border median (0)
    assert out.shape == images.shape and out[0, :5].max() == 0 and out[0, :, :5].max() == 0
    np.testing.assert_array_equal(out[0, 10:, 10:], 100)
    zoomed = crop_corner(images, 0.25, restore="resize")
    assert zoomed.shape == images.shape and zoomed[0, :3, :3].max() == 0


def test_bootstrap_auc_matches_sklearn_and_paired_difference_is_sane():
    from sklearn.metrics import roc_auc_score
    from gfsr_tf.evaluation.classification import _auc_rows, paired_bootstrap
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    good = np.clip(labels * 0.6 + rng.normal(0.2, 0.25, 300), 0, 1)
    noise = rng.uniform(0, 1, 300)
    assert _auc_rows(labels[None], good[None])[0] == pytest.approx(roc_auc_score(labels, good))
    tied = np.array([0.5, 0.5, 0.2, 0.9])
    assert _auc_rows(np.array([[0, 1, 0, 1]]), tied[None])[0] == pytest.approx(
        roc_auc_score([0, 1, 0, 1], tied))
    ci = paired_bootstrap(labels, good, metric="auc", n_resamples=500)
    assert ci["ci_low"] < ci["estimate"] < ci["ci_high"]
    diff = paired_bootstrap(labels, good, noise, metric="accuracy", n_resamples=500)
    assert diff["ci_low"] > 0 and diff["p_value"] < 0.01
    same = paired_bootstrap(labels, good, good, n_resamples=200)
    assert same["estimate"] == 0 and same["p_value"] == 1.0


def test_pixel_auc_hand_worked():
    from gfsr_tf.evaluation import pixel_auc
    region = np.array([[[1, 1], [0, 0]]], bool)
    # inside scores 0.9, 0.4; outside 0.5, 0.1: of the 4 (inside, outside) pairs 3 are ordered
    assert pixel_auc(np.array([[[0.9, 0.4], [0.5, 0.1]]]), region) == pytest.approx(0.75)
    # a coarser map is upsampled to the region's size first; constant map -> chance
    assert pixel_auc(np.zeros((1, 1, 1)), region) == pytest.approx(0.5)
    assert np.isnan(pixel_auc(np.ones((1, 2, 2)), np.ones((1, 2, 2), bool)))
