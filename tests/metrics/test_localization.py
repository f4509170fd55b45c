"""Localization metrics against hand-worked cases, brute force, and CheXlocalize's published
sample (radiologist masks and DenseNet121 Grad-CAM segmentations, COCO RLE)."""
import json

import numpy as np
import pytest

from gfsr_tf.metrics import (auitc, binarise, hit_rate, iou, iou_curve, iou_top_k, miou,
                                tune_threshold)


def test_iou_hand_worked_and_empty_rules():
    pred = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]], bool)
    mask = np.array([[[1, 0], [1, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]], bool)
    # image 0: intersection 1, union 3; 1: false negative; 2: both empty; 3: false positive
    tp = iou(pred, mask, true_pos_only=True)
    np.testing.assert_allclose(tp, [1 / 3, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(iou(pred, mask, true_pos_only=False), [1 / 3, 0, np.nan, 0])
    with pytest.raises(ValueError, match="differ in shape"):
        iou(pred, mask[:, :1])


def test_otsu_binarisation_and_miou():
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, :4] = 0.9              # two clear levels: Otsu splits them
    maps[0, 4:] = 0.1
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :2] = True            # mask = top quarter, prediction = top half -> IoU 0.5
    masks[1, 0, 0] = True          # constant map: keeps nothing -> undefined (TP only)
    np.testing.assert_array_equal(binarise(maps)[0], maps[0] > 0.5)
    out = miou(maps, masks)
    assert out["miou"] == pytest.approx(0.5) and out["n"] == 1
    assert miou(maps, masks, true_pos_only=False)["miou"] == pytest.approx(0.25)
    # fixed threshold on the min-max normalised map
    assert miou(maps, masks, threshold=0.95)["miou"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="NaN"):
        miou(np.full((2, 8, 8), np.nan), masks)


def test_iou_top_k_is_strictly_above_the_percentile():
    ramp = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    top = ramp >= 95               # the 95th percentile of 0..99 is 94.05: 95..99 are above
    assert iou_top_k(ramp, top, k=5)["iou"] == pytest.approx(1.0)
    ties = np.zeros((1, 10, 10), np.float32)
    ties.reshape(-1)[:10] = 1.0    # the 95th percentile is 1: nothing is strictly above it
    assert np.isnan(iou_top_k(ties, ties > 0, k=5)["iou"])


def test_iou_curve_auitc_and_tuned_threshold_against_brute_force():
    mask = np.zeros((1, 10, 10), bool)
    mask[0, :5, :5] = True          # area fraction 0.25
    # a map equal to its mask: IoU 0.25 at tau = 0, 1 for every tau > 0 on the 101-point grid
    assert auitc(mask.astype(np.float32), mask)["auitc"] == pytest.approx(0.99 + 0.005 * 1.25)
    rng = np.random.default_rng(0)
    maps = rng.random((5, 12, 12)).astype(np.float32)
    masks = rng.random((5, 12, 12)) > 0.6
    masks[4] = False
    curve = iou_curve(maps, masks, n_thresholds=11)
    norm = (maps - maps.min((1, 2), keepdims=True)) / np.ptp(maps, (1, 2), keepdims=True)
    for j, tau in enumerate(np.linspace(0, 1, 11)):
        pred = norm >= tau - 1e-7
        brute = (pred & masks).sum((1, 2)) / (pred | masks).sum((1, 2))
        np.testing.assert_allclose(curve[:4, j], brute[:4], atol=1e-12)
    assert np.isnan(curve[4]).all() and np.isnan(auitc(maps, masks)["per_image"][4])
    best = tune_threshold(maps[:4], masks[:4], n_thresholds=11)
    assert best == pytest.approx(np.argmax(np.nanmean(curve[:4], 0)) / 10)


def test_metrics_are_vectorised_fast_enough():
    import time
    rng = np.random.default_rng(0)
    maps = rng.random((2000, 64, 64)).astype(np.float32)
    masks = rng.random((2000, 64, 64)) > 0.8
    t0 = time.perf_counter()
    auitc(maps, masks)
    iou_top_k(maps, masks)
    # generous: measured ~1 s on 2 cores; 10,000 x 128^2 is 20x this (benchmarks/)
    assert time.perf_counter() - t0 < 30


def _chexlocalize(shared_data):
    mask_util = pytest.importorskip("pycocotools.mask")
    root = shared_data / "chexlocalize_sample"
    if not root.is_dir():
        pytest.skip("CheXlocalize sample not present")
    gt = json.loads((root / "gt_segmentations_val.json").read_text())
    cam = json.loads((root / "gradcam_segmentations_val_sample.json").read_text())
    polygons = json.loads((root / "gt_annotations_val.json").read_text())
    return mask_util, gt, cam, polygons


def _decode(mask_util, rle):
    return mask_util.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def test_iou_agrees_with_pycocotools_on_chexlocalize(shared_data):
    mask_util, gt, cam, _ = _chexlocalize(shared_data)
    checked = 0
    for cxr, tasks in gt.items():
        for task, rle in tasks.items():
            g, p = _decode(mask_util, rle), _decode(mask_util, cam[cxr][task])
            ours = iou(p[None], g[None], true_pos_only=False)[0]
            theirs = mask_util.iou([{"size": rle["size"], "counts": cam[cxr][task]["counts"].encode()}],
                                   [{"size": rle["size"], "counts": rle["counts"].encode()}], [0])
            if g.any() or p.any():
                assert ours == pytest.approx(float(np.asarray(theirs).ravel()[0]), abs=1e-9)
                checked += 1
            else:
                assert np.isnan(ours)
            tp_only = iou(p[None], g[None])[0]
            assert np.isnan(tp_only) == (not (g.any() and p.any()))
    assert checked >= 4


def test_chexlocalize_masks_match_their_polygons_and_hit_rate(shared_data):
    import cv2
    mask_util, gt, _, polygons = _chexlocalize(shared_data)
    cxr = "patient64541_study1_view1_frontal"
    g = _decode(mask_util, gt[cxr]["Cardiomegaly"])
    drawn = np.zeros(g.shape, np.uint8)
    for poly in polygons[cxr]["Cardiomegaly"]:
        cv2.fillPoly(drawn, [np.round(np.asarray(poly)).astype(np.int32)], 1)
    assert iou(drawn[None] > 0, g[None])[0] > 0.95  # the RLE is the rasterised polygon
    # A coarse saliency map peaking over the heart hits; one peaking in the corner misses.
    ys, xs = np.nonzero(g)
    grid = np.zeros((2, 16, 16), np.float32)
    grid[0, int(ys.mean() * 16 / g.shape[0]), int(xs.mean() * 16 / g.shape[1])] = 1
    grid[1, 0, 0] = 1
    small = cv2.resize(g.astype(np.uint8), (g.shape[1] // 8, g.shape[0] // 8),
                       interpolation=cv2.INTER_NEAREST) > 0
    hits = hit_rate(grid, np.stack([small, small]))["hits"]
    np.testing.assert_array_equal(hits, [1, 0])


def test_energy_inside_against_hand_worked_maps():
    from gfsr_tf.metrics import energy_inside
    maps = np.array([[[1, 3], [0, 0]], [[0, 0], [0, 0]], [[2, 2], [2, -2]]], np.float32)
    masks = np.array([[[0, 1], [0, 0]], [[1, 0], [0, 0]], [[1, 1], [0, 0]]], bool)
    out = energy_inside(maps, masks)
    # 3 / 4 inside; the all-zero map is undefined; negatives are clipped: 4 / 6
    np.testing.assert_allclose(out["per_image"], [0.75, np.nan, 4 / 6])
    assert out["energy_inside"] == pytest.approx((0.75 + 4 / 6) / 2) and out["n"] == 2


def test_anatomy_over_every_image_by_hand():
    """Four 4x4 maps against a lung field in the left half: a peak inside (hit), a peak outside
    (miss), a constant map (miss) and an all-zero map (miss, counted as empty)."""
    from gfsr_tf.evaluators.localization import anatomy
    lungs = np.zeros((4, 4, 4), bool)
    lungs[:, :, :2] = True
    heat = np.zeros((4, 4, 4), np.float32)
    heat[0, 1, 0] = 1.0          # inside
    heat[1, 2, 3] = 1.0          # outside
    heat[2] = 0.5                # constant: points nowhere
    out = anatomy(heat, lungs)
    assert out["lung_hit_rate_all"] == 0.25 and out["n_all"] == 4
    assert out["all_zero_maps"] == 0.25 and out["all_zero_maps_count"] == 1
    # energy inside: 1, 0, 0.5 (constant map: half its cells), undefined for the empty map
    assert out["lung_cam_mass_all"] == pytest.approx(0.5)
    assert out["lung_area_share"] == 0.5
