import math

import numpy as np
import pytest

from gfsr_tf.metrics import binary_metrics, crop_corner, decision_change, hit_rate


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
    from gfsr_tf.metrics.classification import _auc_rows, paired_bootstrap
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
    from gfsr_tf.metrics import pixel_auc
    region = np.array([[[1, 1], [0, 0]]], bool)
    # inside scores 0.9, 0.4; outside 0.5, 0.1: of the 4 (inside, outside) pairs 3 are ordered
    assert pixel_auc(np.array([[[0.9, 0.4], [0.5, 0.1]]]), region) == pytest.approx(0.75)
    # a coarser map is upsampled to the region's size first; constant map -> chance
    assert pixel_auc(np.zeros((1, 1, 1)), region) == pytest.approx(0.5)
    assert np.isnan(pixel_auc(np.ones((1, 2, 2)), np.ones((1, 2, 2), bool)))


def test_classification_metrics_binary_hand_worked_with_cis():
    from gfsr_tf.metrics import classification_metrics
    labels = [0, 0, 0, 1, 1, 1, 1, 1]
    probs = [0.1, 0.6, 0.2, 0.9, 0.4, 0.8, 0.7, 0.3]
    m = classification_metrics(labels, probs, threshold=0.5, class_names=("normal", "pneumonia"))
    # predictions 0 1 0 | 1 0 1 1 0 -> TP 3, FN 2, TN 2, FP 1
    assert m["confusion_matrix"] == [[2, 1], [2, 3]]
    assert m["sensitivity"]["estimate"] == pytest.approx(3 / 5)
    assert m["specificity"]["estimate"] == pytest.approx(2 / 3)
    assert m["precision"]["estimate"] == pytest.approx(3 / 4)
    assert m["f1"]["estimate"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert m["accuracy"]["estimate"] == pytest.approx(5 / 8)
    # AUC: of the 15 (pos, neg) pairs, 0.4 and 0.3 lose to 0.6 -> 13 / 15
    assert m["auc"]["estimate"] == pytest.approx(13 / 15)
    for key in ("accuracy", "auc", "sensitivity", "specificity", "precision", "f1"):
        assert m[key]["ci_low"] <= m[key]["estimate"] <= m[key]["ci_high"], key
    assert m["per_class"]["pneumonia"]["recall"] == pytest.approx(3 / 5)
    assert math.isnan(classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])["auc"]["estimate"])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics([0, 1], [0.2, 0.7, 0.9])


def test_classification_metrics_multiclass_matches_sklearn():
    from sklearn.metrics import (balanced_accuracy_score, confusion_matrix, f1_score,
                                 precision_score, roc_auc_score)
    from gfsr_tf.metrics import classification_metrics
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 300)
    probs = rng.dirichlet(np.ones(5), 300)
    probs[np.arange(300), labels] += 0.3
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = classification_metrics(labels, probs, n_resamples=200)
    assert m["auc"]["estimate"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert m["sensitivity"]["estimate"] == pytest.approx(balanced_accuracy_score(labels, pred))
    assert m["precision"]["estimate"] == pytest.approx(precision_score(labels, pred, average="macro"))
    assert m["f1"]["estimate"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert m["confusion_matrix"] == confusion_matrix(labels, pred).tolist()
    cm = np.array(m["confusion_matrix"])
    spec = [(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum())
            for c in range(5)]
    assert m["specificity"]["estimate"] == pytest.approx(np.mean(spec))


def test_operating_thresholds_chosen_on_validation():
    from gfsr_tf.metrics import choose_threshold
    labels = [0, 0, 0, 1, 1, 1, 1]
    probs = [0.1, 0.3, 0.5, 0.4, 0.7, 0.8, 0.9]
    # Youden: at 0.7 -> TPR 3/4, FPR 0 (J = 0.75); at 0.4 -> TPR 1, FPR 1/3 (J = 0.67)
    assert choose_threshold(labels, probs, "youden") == pytest.approx(0.7)
    # F1: at 0.4 -> P 4/5, R 1 -> 0.889 (best); at 0.7 -> P 1, R 3/4 -> 0.857
    assert choose_threshold(labels, probs, "f1") == pytest.approx(0.4)
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.3])


def test_perturbations_change_only_what_they_claim():
    import cv2
    from gfsr_tf.metrics import fundus_centre, occlude, replace_periphery, selective_blur
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    out = occlude(images, (2, 3, 10, 12), fill=7)
    assert (out[:, 2:10, 3:12] == 7).all()
    out[:, 2:10, 3:12] = images[:, 2:10, 3:12]
    np.testing.assert_array_equal(out, images)
    # a bright disc centred at (25, 15) on black: its centre is found
    fundus = np.zeros((1, 60, 60, 3), np.uint8)
    cv2.circle(fundus[0], (15, 25), 12, (200, 120, 60), -1)
    assert fundus_centre(fundus[0]) == pytest.approx((25, 15), abs=0.5)
    # selective blur: unchanged within the radius, blurred beyond radius + feather
    noisy = rng.integers(0, 256, (1, 60, 60, 1), dtype=np.uint8)
    blurred = selective_blur(noisy, radius=10, sigma=1.5, feather=2, centres=[(30, 30)])
    yy, xx = np.mgrid[:60, :60]
    d = np.hypot(yy - 30, xx - 30)
    np.testing.assert_array_equal(blurred[0, d <= 10], noisy[0, d <= 10])
    reference = cv2.GaussianBlur(noisy[0].astype(np.float32), (0, 0), 1.5)
    np.testing.assert_allclose(blurred[0, d >= 12, 0], np.round(reference[d >= 12]), atol=1)
    # peripheral replacement: centre kept, corners become the reference background
    background = np.full((10, 10, 3), 99, np.uint8)
    replaced = replace_periphery(images, background, keep=0.5, feather=1)
    np.testing.assert_array_equal(replaced[:, 18:22, 18:22], images[:, 18:22, 18:22])
    assert (replaced[:, 0, 0] == 99).all() and (replaced[:, -1, -1] == 99).all()


def test_mean_ci_excludes_undefined_and_brackets_the_mean():
    from gfsr_tf.metrics import mean_ci
    out = mean_ci([1, 0, 1, 1, np.nan, 0, 1, 1])
    assert out["estimate"] == pytest.approx(5 / 7)
    assert 0 <= out["ci_low"] <= 5 / 7 <= out["ci_high"] <= 1
    assert mean_ci([1, 1, 1])["ci_low"] == 1.0
    assert math.isnan(mean_ci([np.nan])["estimate"])
