"""The real-image shortcut benchmark (datasets.real_shortcut): exact twins, the specified marker
correlation, class-balanced subsamples, the unmarked official test split, and a study on the real
PneumoniaMNIST file when ../shared/data is present."""
import numpy as np
import pytest

from gfsr_tf.config import BenchmarkConfig, VariantConfig
from gfsr_tf.datasets.real_shortcut import load_real_shortcut

SPLITS = {"train": 60, "val": 30, "test": 40}


def _fake_medmnist(path, classes: int, seed: int = 0):
    """A MedMNIST-layout npz of random 28-px gray images (the loader reads nothing else)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SPLITS.items():
        arrays[f"{split}_images"] = rng.integers(0, 200, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % classes).reshape(-1, 1)
    np.savez(path, **arrays)
    return arrays


@pytest.fixture
def pneumonia(tmp_path):
    arrays = _fake_medmnist(tmp_path / "pneumoniamnist.npz", 2)
    config = BenchmarkConfig(image_size=32, n_train=40, n_val=20)
    return load_real_shortcut("pneumoniamnist_shortcut", tmp_path / "pneumoniamnist.npz", config,
                              seed=3), arrays, config


def test_every_twin_differs_only_inside_its_marker_box(pneumonia):
    data, _, _ = pneumonia
    for name in ("train", "val", "test_correlated", "test_decorrelated"):
        s = data[name]
        assert s.has_marker.any() and (~s.has_marker).any()
        for i in range(len(s)):
            y0, x0, y1, x1 = s.marker_boxes[i]
            outside = np.ones(s.images.shape[1:3], bool)
            outside[y0:y1, x0:x1] = False
            # the marker-added and the marker-free counterfactual: equal outside the box, and
            # the glyph is really there inside it
            assert np.array_equal(s.marker_added[i][outside], s.twins[i][outside]), (name, i)
            assert (s.marker_added[i].astype(int) - s.twins[i]).max() > 100, (name, i)
            shown = s.marker_added[i] if s.has_marker[i] else s.twins[i]
            assert np.array_equal(s.images[i], shown), (name, i)


def test_marker_correlation_and_splits_are_as_specified(pneumonia):
    data, arrays, config = pneumonia
    for name in ("train", "val", "test_correlated"):
        s = data[name]
        for label, rate in ((1, config.marker_rate_pneumonia), (0, config.marker_rate_normal)):
            n = int((s.labels == label).sum())
            assert s.has_marker[s.labels == label].sum() == round(rate * n), (name, label)
    decor = data["test_decorrelated"]
    for label in (0, 1):
        n = int((decor.labels == label).sum())
        assert decor.has_marker[decor.labels == label].sum() == round(0.5 * n)
    # class-balanced subsamples of train / val; the official test images, all of them, in both
    # test splits (with their own marker draws) and unmarked in `test`
    assert np.bincount(data["train"].labels).tolist() == [20, 20]
    assert np.bincount(data["val"].labels).tolist() == [10, 10]
    assert data["test_correlated"].names == data["test_decorrelated"].names == data["test"].names
    assert len(data["test"]) == SPLITS["test"]
    assert not np.array_equal(data["test_correlated"].has_marker,
                              data["test_decorrelated"].has_marker)
    assert np.array_equal(data["test"].images, data["test_decorrelated"].twins)
    assert data["test"].twins is None and data["test"].has_marker is None


def test_retina_is_split_at_grade_two_and_wrong_files_or_templates_are_refused(tmp_path):
    _fake_medmnist(tmp_path / "retinamnist.npz", 5)
    config = BenchmarkConfig(image_size=32, n_train=40, n_val=20)
    data = load_real_shortcut("retinamnist_shortcut", tmp_path / "retinamnist.npz", config)
    official = np.arange(SPLITS["test"]) % 5
    assert data["test"].labels.tolist() == (official >= 2).astype(int).tolist()
    assert data["test"].class_names == ("grade 0-1", "grade 2-4")
    with pytest.raises(ValueError, match="pneumoniamnist_shortcut reads pneumoniamnist.npz"):
        load_real_shortcut("pneumoniamnist_shortcut", tmp_path / "retinamnist.npz", config)
    from gfsr_tf.presets import preset
    from gfsr_tf.study.run import validate
    study = preset("benchmark")
    study.dataset = "retinamnist_shortcut"
    with pytest.raises(ValueError, match="calls for fundus_disc template annotations"):
        validate(study)
    study = preset("real_shortcut")
    study.dataset = "retinamnist_shortcut"
    validate(study)


def test_the_audit_runs_unchanged_on_real_pneumoniamnist(shared_data, tmp_path):
    """A smoke-sized baseline on the real file: report.json carries the labels and marker flags
    of the decorrelated split and the audit's figures, as on the embedded benchmark."""
    import json
    from gfsr_tf.presets import preset
    from gfsr_tf.study import run_study
    config = preset("real_shortcut", smoke=True)
    config.data_dir = str(shared_data / "pneumoniamnist" / "pneumoniamnist.npz")
    config.variants = (VariantConfig("baseline", "baseline"),)
    config.model.backbone = "small_cnn"     # the data path and the audit, not ResNet50's cost
    run_study(config, tmp_path, verbose=0)
    report = json.loads((tmp_path / config.name / "report.json").read_text())
    decor = report["data"]["test_decorrelated"]
    # a smoke run evaluates a class-balanced subset of the 624 official test images
    assert decor["n"] == config.benchmark.n_test == report["data"]["test"]["n"]
    assert sum(decor["has_marker"]) == config.benchmark.n_test // 2
    audit = report["baseline"]["audit"]
    assert 0.0 <= audit["within_class_marker_auc"]["mean"] <= 1.0
    assert "marker_effect_removal" in audit and "twin_accuracy" in audit
    assert set(report["baseline"]["metrics"]) >= {"test_correlated", "test_decorrelated", "test"}


def test_mask_quality_on_the_marker_box_is_measured_against_the_template(pneumonia, tmp_path):
    """Constructed masks whose answer is known: relevance 1 inside the lung-field template and 0
    elsewhere (box included) -> box 0, region 1, outside 0; a mask that is 1 only on the boxes ->
    box 1, region 0."""
    from gfsr_tf.guidance.templates import template_mask
    from gfsr_tf.study.guidance import shortcut_relevance
    train = pneumonia[0]["train"]
    lungs = np.stack([template_mask("lung_fields", im) for im in train.images]).astype(np.float32)
    lungs = (lungs > 0.5).astype(np.float32)
    boxes = np.zeros_like(lungs)
    for i, (y0, x0, y1, x1) in enumerate(train.marker_boxes):
        lungs[i, y0:y1, x0:x1] = 0
        boxes[i, y0:y1, x0:x1] = 1
    q = shortcut_relevance(lungs, train, "lung_fields")
    assert len(q["marker_box"]) == train.has_marker.sum()
    assert (q["marker_box_mean"], q["template_region_mean"], q["outside_mean"]) == (0.0, 1.0, 0.0)
    q = shortcut_relevance(boxes, train, "lung_fields")
    assert (q["marker_box_mean"], q["template_region_mean"]) == (1.0, 0.0)
    from gfsr_tf.report.figures import plot_mask_quality
    assert plot_mask_quality({"masks": {"shortcut_relevance": q}}, tmp_path / "quality.png")
    assert (tmp_path / "quality.png").stat().st_size > 5_000
    assert not plot_mask_quality({"masks": {}}, tmp_path / "none.png")


def test_mask_quality_leaves_out_parts_an_image_does_not_have(pneumonia, tmp_path, monkeypatch):
    """A template region that covers the whole frame leaves no "elsewhere": that part is left
    out (RetinaMNIST's fundus disc did this on 5 of 400 images), never NaN."""
    import gfsr_tf.guidance.templates as templates
    from gfsr_tf.study.guidance import shortcut_relevance
    train = pneumonia[0]["train"]
    masks = np.full(train.images.shape[:3], 0.5, np.float32)
    monkeypatch.setattr(templates, "template_mask",
                        lambda kind, image: np.ones(image.shape[:2], np.float32))
    q = shortcut_relevance(masks, train, "lung_fields")
    assert q["outside"] == [] and q["outside_mean"] is None
    assert q["marker_box_mean"] == pytest.approx(0.5)
    from gfsr_tf.report.figures import plot_mask_quality
    assert plot_mask_quality({"masks": {"shortcut_relevance": q}}, tmp_path / "q.png")


def test_mask_quality_experiment_judges_each_setting_as_a_study_would(tmp_path, capsys):
    """experiments/mask_quality.py on a MedMNIST-layout file: per seed and setting one row; the
    default row is what the study's own guidance (template annotations -> propagated masks ->
    shortcut_relevance) gives on the same training split; a bad setting is one line, exit 1."""
    import json
    from conftest import experiment
    from gfsr_tf.presets import preset
    from gfsr_tf.study.data import load_data
    from gfsr_tf.study.guidance import StudyGuidance
    npz = tmp_path / "pneumoniamnist.npz"
    _fake_medmnist(npz, 2)
    mask_quality = experiment("mask_quality")
    args = ["--smoke", "--data-dir", str(npz), "--seeds", "0,1", "--out", str(tmp_path / "runs"),
            "--settings", "default;k=3,position_weight=16", "--quiet"]
    assert mask_quality.main(args) == 0
    out = tmp_path / "runs" / "mask_quality_pneumoniamnist_shortcut"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["seed"], r["setting"]) for r in rows] == [
        (0, "default"), (0, "k=3,position_weight=16"), (1, "default"),
        (1, "k=3,position_weight=16")]
    assert (out / "results.png").stat().st_size > 5_000
    config = preset("real_shortcut", smoke=True)
    config.data_dir, config.train.seed, config.benchmark.seed = str(npz), 1, 1
    guidance = StudyGuidance(config, load_data(config)["train"], tmp_path / "study",
                             tmp_path / "cache", [], verbose=0)
    guidance.masks("gfsr", "annotations", 0.0)
    quality = guidance.section["shortcut_relevance"]
    assert rows[2]["marker_box"] == pytest.approx(quality["marker_box_mean"], abs=1e-6)
    assert rows[2]["template_region"] == pytest.approx(quality["template_region_mean"], abs=1e-6)
    assert rows[3]["template_region"] != pytest.approx(rows[2]["template_region"], abs=1e-6)
    capsys.readouterr()
    for bad, says in (("k=abc", "takes a number"), ("colour=3", "expected OPTION=VALUE"),
                      ("position_weight=-1", "position_weight")):
        assert mask_quality.main(args[:-3] + ["--settings", bad]) == 1
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
