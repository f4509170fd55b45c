"""The shortcut audit and the faithfulness metrics, on constructed cases with known answers."""

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gfsr_tf.config import BenchmarkConfig
from gfsr_tf.datasets.synthetic import make_split, paste_marker, paste_overlay
from gfsr_tf.metrics.faithfulness import deletion_insertion
from gfsr_tf.evaluators import EvalContext
from gfsr_tf.evaluators.audit import evaluate as audit
from gfsr_tf.preprocessing import get_preprocessor
from gfsr_tf.presets import preset

SIZE = 32
W, C = 12.0, -1.0   # the constructed model's logit: W * mean(top-left 8x8 pixels / 255) + C


def corner_model(corner: int = 8):
    """z = W * (mean of the top-left corner x corner pixels, / 255) + C: a model that reads
    nothing but the corner where the marker sits (corner = SIZE: the whole image's mean)."""
    inputs = keras.Input((SIZE, SIZE, 1))
    # an identity 1x1 conv: the full-size map Grad-CAM reads ("features" = the pixels)
    features = keras.layers.Conv2D(1, 1, use_bias=False, name="features")(inputs)
    corner = keras.layers.Cropping2D(((0, SIZE - corner), (0, SIZE - corner)))(features)
    pooled = keras.layers.GlobalAveragePooling2D()(corner)
    logits = keras.layers.Dense(1, name="logits")(pooled)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))
    model.get_layer("features").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("logits").set_weights([np.array([[W / 255.0]], np.float32),
                                           np.array([C], np.float32)])
    return model


def _corner_logit(images, corner: int = 8):
    return W * images[:, :corner, :corner, 0].astype(np.float64).mean((1, 2)) / 255.0 + C


def test_benchmark_counterfactuals_differ_only_at_the_marker():
    data = make_split(BenchmarkConfig(image_size=SIZE), "test_decorrelated", 16)
    marked = data.has_marker
    np.testing.assert_array_equal(data.marker_added[marked], data.images[marked])
    np.testing.assert_array_equal(data.twins[~marked], data.images[~marked])
    for i in range(len(data)):
        y0, x0, y1, x1 = data.marker_boxes[i]
        outside = np.ones((SIZE, SIZE), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(data.marker_added[i, outside], data.twins[i, outside])
        assert (data.marker_added[i] != data.twins[i]).any()  # the glyph is really drawn


def test_paste_marker_touches_only_the_top_left_corner():
    images = np.full((3, SIZE, SIZE, 1), 40, np.uint8)
    out = paste_marker(images, seed=0)
    changed = (out != images)[..., 0]
    assert changed.any(axis=(1, 2)).all()
    ys, xs = np.nonzero(changed.any(0))
    assert ys.max() < SIZE // 3 and xs.max() < SIZE // 3
    np.testing.assert_array_equal(paste_marker(images, seed=0), out)  # seeded


def test_audit_of_a_model_that_reads_only_the_marker_corner():
    data = make_split(BenchmarkConfig(image_size=SIZE), "test_decorrelated", 40)
    study = preset("smoke")
    ctx = EvalContext(corner_model(), get_preprocessor("none"), {"test_decorrelated": data},
                      study, "features")
    a = audit(ctx)["audit"]
    z, zt, za = (_corner_logit(x) for x in (data.images, data.twins, data.marker_added))
    marked, labels = data.has_marker, data.labels
    assert a["marker_effect_removal"]["estimate"] == pytest.approx((z - zt)[marked].mean(),
                                                                   rel=1e-4)
    assert a["marker_effect_addition"]["estimate"] == pytest.approx((za - z)[~marked].mean(),
                                                                    rel=1e-4)
    assert a["marker_effect_removal"]["estimate"] > 0.5  # the glyph lifts the corner mean (0.66)
    for c in ("0", "1"):
        sel = labels == int(c)
        assert a["within_class_marker_auc"]["per_class"][c] == pytest.approx(
            roc_auc_score(marked[sel], z[sel]))
    assert a["within_class_marker_auc"]["mean"] > 0.85  # 0.925: the corner holds anatomy too
    assert a["twin_accuracy"] == pytest.approx(np.mean((zt > 0) == labels))
    by_class = [z[(labels == c) & marked].mean() - z[(labels == c) & ~marked].mean()
                for c in (0, 1)]
    assert a["marker_effect"] == pytest.approx(np.mean(by_class), rel=1e-4)
    # Grad-CAM at the identity layer: the gradient's spatial mean is a positive constant for
    # class 1 (a negative one for class 0: an all-zero map, excluded), so the map is the image
    # itself and its mass in the box is the box's share of the pixel sum
    shares = []
    for i in np.flatnonzero(marked & (labels == 1)):
        y0, x0, y1, x1 = data.marker_boxes[i]
        image = data.images[i, ..., 0].astype(np.float64)
        shares.append(image[y0:y1, x0:x1].sum() / image.sum())
    assert a["cam_marker_mass"]["estimate"] == pytest.approx(np.mean(shares), rel=1e-3)
    assert 0 <= a["deletion_auc"] <= 1 and 0 <= a["insertion_auc"] <= 1


def test_where_the_deletion_ends_and_what_blurring_the_lesions_removes_by_hand():
    """The removal check beside deletion: every curve ends on the fully blurred image, and the
    change of the true class's probability when only the lesions are blurred, for a model
    that reads the whole image's mean (the answers by hand)."""
    import cv2
    data = make_split(BenchmarkConfig(image_size=SIZE), "test_decorrelated", 40)
    ctx = EvalContext(corner_model(SIZE), get_preprocessor("none"), {"test_decorrelated": data},
                      preset("smoke"), "features")
    a = audit(ctx)["audit"]
    labels = data.labels

    def p_true(x):
        p = 1 / (1 + np.exp(-_corner_logit(x, SIZE)))
        return np.where(labels == 1, p, 1 - p)

    blurred = np.stack([cv2.GaussianBlur(im.astype(np.float32), (0, 0), SIZE / 16)
                        for im in data.images])[..., None]
    np.testing.assert_allclose(a["deletion_start_per_image"], p_true(data.images), atol=2e-5)
    np.testing.assert_allclose(a["deletion_end_per_image"], p_true(blurred), atol=2e-5)
    lesion = data.lesions[..., None] > 0
    has = lesion.reshape(len(data), -1).any(1)
    assert has.any() and labels[has].all()      # the benchmark's lesions: pneumonia images
    change = (p_true(np.where(lesion, blurred, data.images.astype(np.float32)))
              - p_true(data.images))[has]
    assert abs(change.mean()) > 1e-4            # the blur does move the image's mean a little
    assert a["lesion_replaced_change"]["estimate"] == pytest.approx(change.mean(), abs=2e-5)
    # deletion towards the exact lesion-free twin, by hand: the pneumonia images' Grad-CAM at
    # the identity layer is the image itself (a positive constant weight), so the pixels go
    # brightest first; each deleted pixel takes the twin's value
    twin = data.lesion_removed.astype(np.float32)
    lesion_images = np.flatnonzero((twin != data.images).reshape(len(data), -1).any(1))
    assert a["lesion_twin_images"] == len(lesion_images) == has.sum()
    bounds = np.linspace(0, SIZE * SIZE, 13).round().astype(int)
    expected = []
    for i in lesion_images:
        image = data.images[i].astype(np.float32)
        order = np.argsort(-image.ravel(), kind="stable")
        curve = []
        for bound in bounds:
            x = image.ravel().copy()
            x[order[:bound]] = twin[i].ravel()[order[:bound]]
            z = W * x.mean() / 255.0 + C
            curve.append(1 / (1 + np.exp(-z)))
        expected.append((np.trapezoid(curve, bounds / (SIZE * SIZE)), curve[0], curve[-1]))
    expected = np.asarray(expected)
    for column, key in enumerate(("deletion", "start", "end")):
        np.testing.assert_allclose(a[f"lesion_twin_{key}_per_image"], expected[:, column],
                                   atol=1e-4)
    # the template control, by hand: the pneumonia images' maps are the images over their max,
    # the normal images' are empty (the score falls with every pixel); the class template is
    # the mean map of the class, and the same curves run with it as every image's map
    pneumonia = labels == 1
    maps = data.images[..., 0].astype(np.float64) / data.images.reshape(len(data), -1).max(1)[
        :, None, None]
    template = maps[pneumonia].mean(0)
    corr = [np.corrcoef(maps[i].ravel(), template.ravel())[0, 1] for i in np.flatnonzero(pneumonia)]
    got = a["map_template_correlation"]
    assert got["estimate"] == pytest.approx(np.mean(corr), abs=1e-4)
    assert got["constant_maps"] == int((~pneumonia).sum()) > 0    # the empty maps: excluded
    order = np.argsort(-template.ravel(), kind="stable")
    by_template = []
    for i in lesion_images:
        image, curve = data.images[i].astype(np.float32).ravel(), []
        for bound in bounds:
            x = image.copy()
            x[order[:bound]] = twin[i].ravel()[order[:bound]]
            curve.append(1 / (1 + np.exp(-(W * x.mean() / 255.0 + C))))
        by_template.append(np.trapezoid(curve, bounds / (SIZE * SIZE)))
    np.testing.assert_allclose(a["lesion_twin_template_deletion_per_image"], by_template,
                               atol=1e-4)
    assert a["lesion_twin_template_deletion_difference"]["estimate"] == pytest.approx(
        np.mean(expected[:, 0] - by_template), abs=1e-4)
    # this model's decision is the image's mean: the brightest pixels first (its own map)
    # remove more of the lesion's effect, earlier, than the template's order does
    assert a["lesion_twin_template_deletion_difference"]["ci_high"] < 0
    effect = expected[:, 1] - expected[:, 2]
    moved = effect >= 0.2
    share = ((expected[:, 0] - expected[:, 2]) - (np.asarray(by_template) - expected[:, 2])) / \
        np.where(moved, effect, 1)
    if moved.any():
        assert a["lesion_twin_template_share_difference"]["n"] == moved.sum()
        assert a["lesion_twin_template_share_difference"]["estimate"] == pytest.approx(
            share[moved].mean(), abs=1e-4)
    else:
        assert "lesion_twin_template_share_difference" not in a
    # the templates themselves, saved with the maps for the report's grid: per class, sorted
    np.testing.assert_array_equal(ctx.maps["templates/classes"], [0, 1])
    np.testing.assert_allclose(ctx.maps["templates/heatmaps"][1], template, atol=1e-5)
    np.testing.assert_array_equal(ctx.maps["templates/heatmaps"][0], 0)   # the empty maps' mean


def test_audit_on_real_data_pastes_a_marker():
    data = make_split(BenchmarkConfig(image_size=SIZE), "test_decorrelated", 12)
    data.twins = data.marker_added = data.has_marker = None   # as real data comes
    ctx = EvalContext(corner_model(), get_preprocessor("none"), {"test": data}, preset("smoke"),
                      "features")
    a = audit(ctx)["audit"]
    pasted = paste_marker(data.images, seed=preset("smoke").train.seed)
    expected = (_corner_logit(pasted) - _corner_logit(data.images)).mean()
    assert a["marker_effect_addition"]["estimate"] == pytest.approx(expected, rel=1e-4)
    assert "pasted" in a["marker_source"] and "marker_effect_removal" not in a
    # the text overlay goes into the top-right corner, which this model never reads
    study = preset("smoke")
    study.audit_overlays = ("text",)
    ctx = EvalContext(corner_model(), get_preprocessor("none"), {"test": data}, study,
                      "features")
    text = audit(ctx)["audit"]["text_overlay"]
    overlaid = paste_overlay(data.images, seed=study.train.seed, kind="text")
    assert np.any(overlaid != data.images)
    assert text["effect_addition"]["estimate"] == pytest.approx(
        (_corner_logit(overlaid) - _corner_logit(data.images)).mean(), abs=1e-6)
    assert text["effect_addition"]["estimate"] == pytest.approx(0.0, abs=1e-6)


def test_deletion_and_insertion_by_hand():
    """1x4 image [1, .5, 0, 0], the map ranks the pixels the same way, baseline 0, the "model"
    is p = mean pixel. Deletion: .375, .125, 0, 0, 0 -> AUC 0.078125; insertion: 0, .25, .375,
    .375, .375 -> AUC 0.296875 (trapezoidal rule over fractions 0, .25, .5, .75, 1)."""
    image = np.array([1, 0.5, 0, 0], np.float32).reshape(1, 1, 4, 1)

    def predict(x):
        p = x.reshape(len(x), -1).mean(1)
        return np.stack([1 - p, p], 1)

    out = deletion_insertion(predict, image, image[..., 0], [1], np.zeros_like(image), steps=4)
    np.testing.assert_allclose(out["curves"]["deletion"][0], [.375, .125, 0, 0, 0])
    np.testing.assert_allclose(out["curves"]["insertion"][0], [0, .25, .375, .375, .375])
    assert out["deletion_auc"] == pytest.approx(0.078125)
    assert out["insertion_auc"] == pytest.approx(0.296875)
    # a map that ranks backwards is less faithful on both curves
    worse = deletion_insertion(predict, image, -image[..., 0], [1], np.zeros_like(image), steps=4)
    assert worse["deletion_auc"] > out["deletion_auc"] and worse["insertion_auc"] < out["insertion_auc"]
    with pytest.raises(ValueError, match="NaN"):
        deletion_insertion(predict, image, np.full((1, 1, 4), np.nan), [1], 0.0)
