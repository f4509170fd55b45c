import numpy as np
import pytest

from gfsr_tf.config import BenchmarkConfig
from gfsr_tf.datasets.synthetic import make_split, render_case, simulate_scribbles
from gfsr_tf.metrics import box_masks


@pytest.fixture(scope="module")
def split():
    return make_split(BenchmarkConfig(image_size=48, seed=3), "train", 40)


def test_twins_differ_only_inside_the_marker_box(split):
    diff = (split.images != split.twins)[..., 0]
    inside = box_masks(split.marker_boxes, diff.shape[1:])
    assert not diff[~inside].any()
    assert all(diff[i].any() for i in np.flatnonzero(split.has_marker))
    assert not diff[~split.has_marker].any()


def test_marker_correlates_with_label_in_train_and_not_in_decorrelated():
    cfg = BenchmarkConfig(image_size=32, seed=1)
    train = make_split(cfg, "train", 100)
    assert train.has_marker[train.labels == 1].mean() == pytest.approx(0.9)
    assert train.has_marker[train.labels == 0].mean() == pytest.approx(0.1)
    test = make_split(cfg, "test_decorrelated", 100)
    assert test.has_marker[test.labels == 1].mean() == pytest.approx(0.5)
    assert test.has_marker[test.labels == 0].mean() == pytest.approx(0.5)


def test_deterministic_and_lesions_only_in_pneumonia_inside_lungs(split):
    again = make_split(BenchmarkConfig(image_size=48, seed=3), "train", 40)
    np.testing.assert_array_equal(split.images, again.images)
    other = make_split(BenchmarkConfig(image_size=48, seed=4), "train", 40)
    assert not np.array_equal(split.images, other.images)
    assert not split.lesions[split.labels == 0].any()
    assert all(split.lesions[i].any() for i in np.flatnonzero(split.labels == 1))
    assert not (split.lesions & (split.lungs == 0)).any()
    assert 0.15 < split.lungs.mean() < 0.35


def test_same_seed_same_anatomy_with_and_without_pneumonia():
    a = render_case(48, True, False, False, 0.5, (0, 0, 7))
    b = render_case(48, False, False, False, 0.5, (0, 0, 7))
    changed = np.abs(a["image"] - b["image"]) > 1e-6
    assert changed.any() and not (changed & (a["lungs"] == 0)).any()



def test_the_lesion_free_twin_is_the_same_image_without_its_opacities(split):
    """`lesion_removed`: normal images unchanged; each pneumonia image differs, only inside its
    lung fields and only darker (the opacities are added light), and equals the same case
    rendered without pneumonia (seeds as make_split draws them; no text overlay by default)."""
    pneumonia = split.labels == 1
    np.testing.assert_array_equal(split.lesion_removed[~pneumonia], split.images[~pneumonia])
    diff = split.images.astype(int) - split.lesion_removed.astype(int)
    assert all(diff[i].any() for i in np.flatnonzero(pneumonia))
    assert not diff[..., 0][split.lungs == 0].any() and (diff >= 0).all()
    i = int(np.flatnonzero(pneumonia)[0])
    case = render_case(48, False, bool(split.has_marker[i]), False, 0.3, (3, 0, i))
    np.testing.assert_array_equal(split.lesion_removed[i, ..., 0],
                                  np.round(case["image"] * 255).astype(np.uint8))
    np.testing.assert_array_equal(split.subset([i]).lesion_removed, split.lesion_removed[[i]])


def test_scribbles_are_coarse_marks_mostly_on_the_lungs(split):
    marks = simulate_scribbles(split.lungs[:6], seed=0)
    assert marks.shape == (6, 48, 48) and set(np.unique(marks)) <= {0, 1}
    on_lungs = (marks * split.lungs[:6]).sum() / marks.sum()
    assert on_lungs > 0.7
    assert marks.sum() < split.lungs[:6].sum()
