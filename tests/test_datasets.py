"""Real-data loaders on fixtures written in the real on-disk format (and on ../shared/data when
it is present)."""
import numpy as np
import pytest

from gfsr_tf.datasets.medmnist import flag_of, load_medmnist


def _write_npz(path, n=(6, 3, 4), shape=(28, 28), classes=2, **override):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count,) + shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % classes).reshape(-1, 1).astype(np.uint8)
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_npz_fixture_shapes_labels_and_resize(tmp_path):
    arrays = _write_npz(tmp_path / "retinamnist_64.npz", shape=(28, 28, 3), classes=5)
    data = load_medmnist(tmp_path / "retinamnist_64.npz")
    assert flag_of("retinamnist_64.npz") == "retinamnist"
    assert [len(data[s]) for s in ("train", "val", "test")] == [6, 3, 4]
    assert data["train"].images.shape == (6, 28, 28, 3) and data["train"].labels.dtype == np.int64
    np.testing.assert_array_equal(data["test"].labels, arrays["test_labels"][:, 0])
    assert data["train"].class_names[4] == "grade 4"
    _write_npz(tmp_path / "pneumoniamnist.npz")
    resized = load_medmnist(tmp_path / "pneumoniamnist.npz", size=56)
    assert resized["val"].images.shape == (3, 56, 56, 1)
    assert resized["train"].class_names == ("normal", "pneumonia")


def test_medmnist_bad_files_are_clear_errors(tmp_path):
    _write_npz(tmp_path / "a.npz", val_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match="val has 3 images but 2 labels"):
        load_medmnist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="missing keys"):
        load_medmnist(tmp_path / "b.npz")
    _write_npz(tmp_path / "chestmnist.npz", train_labels=np.zeros((6, 14), np.uint8))
    with pytest.raises(ValueError, match="multi-label"):
        load_medmnist(tmp_path / "chestmnist.npz")
    (tmp_path / "c.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="cannot read"):
        load_medmnist(tmp_path / "c.npz")
    with pytest.raises(FileNotFoundError):
        load_medmnist(tmp_path / "missing.npz")


def test_real_pneumoniamnist_and_retinamnist_official_splits(shared_data):
    pneu = load_medmnist(shared_data / "pneumoniamnist" / "pneumoniamnist.npz")
    assert [len(pneu[s]) for s in ("train", "val", "test")] == [4708, 524, 624]
    assert set(np.unique(pneu["test"].labels)) == {0, 1}
    retina = load_medmnist(shared_data / "retinamnist" / "retinamnist.npz")
    assert [len(retina[s]) for s in ("train", "val", "test")] == [1080, 120, 400]
    assert retina["train"].images.shape[1:] == (28, 28, 3) and retina["train"].num_classes == 5


def test_tfds_builders_prepare_from_manual_dir_fixtures(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from gfsr_tf.datasets import tfds_builders
    manual = tmp_path / "manual"
    manual.mkdir()
    arrays = _write_npz(manual / "pneumoniamnist.npz")
    builder = tfds_builders.GfsrPneumoniamnist(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    test = list(tfds.as_numpy(builder.as_dataset(split="test")))
    assert len(test) == 4 and test[0]["image"].shape == (28, 28, 1)
    by_name = {t["name"].decode(): t for t in test}
    np.testing.assert_array_equal(by_name["test_00002"]["image"][..., 0], arrays["test_images"][2])
    assert builder.info.features["label"].names == ["normal", "pneumonia"]
    assert "gfsr_pneumoniamnist" in tfds.list_builders()


def test_tfds_kermany_builder_matches_the_loader(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from test_pipeline import _write_kermany
    from gfsr_tf.datasets import tfds_builders
    from gfsr_tf.datasets.kermany import load_kermany
    _write_kermany(tmp_path / "manual")

    class Small(tfds_builders.GfsrPneumonia, skip_registration=True):  # tiny fixture images
        IMAGE_SIZE = 32

    builder = Small(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
    expected = load_kermany(tmp_path / "manual", 32)
    for split in ("train", "val", "test"):
        got = list(tfds.as_numpy(builder.as_dataset(split=split)))
        assert sorted(g["name"].decode() for g in got) == sorted(expected[split].names)
