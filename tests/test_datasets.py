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
    from test_study import _write_kermany
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


# --- splits, class folders, HAM10000, EGD-CXR, templates ---------------------------------------

from real_formats import write_class_folders, write_dicom, write_egd_cxr, write_ham10000  # noqa: E402


def test_grouped_split_keeps_groups_whole_and_stratifies():
    from gfsr_tf.datasets.splits import grouped_split
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), rng.integers(1, 4, 60))
    labels = groups % 3                                    # a group's images share a class
    parts = grouped_split(labels, groups, (0.8, 0.1, 0.1), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))
    sets = [set(groups[p]) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [len(s) for s in sets] == [48, 6, 6]            # 20 groups per class: 16/2/2
    for p in parts[1:]:
        assert set(labels[p]) == {0, 1, 2}
    again = grouped_split(labels, groups, (0.8, 0.1, 0.1), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    with pytest.raises(ValueError, match="sum to 1"):
        grouped_split(labels, groups, (0.8, 0.3))


def test_class_folders_flat_and_split_layouts(tmp_path):
    from gfsr_tf.datasets import detect_kind, load_dataset
    write_class_folders(tmp_path / "flat", per_class=10)
    assert detect_kind(tmp_path / "flat") == "folders"
    data = load_dataset("auto", tmp_path / "flat", 24, val_fraction=0.2, seed=0)
    assert data["train"].class_names == ("husky", "wolf")
    assert [len(data[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert data["train"].images.shape[1:] == (24, 24, 3)
    names = [set(data[s].names) for s in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2])
    # the wolf folder's images are the bright (snow) ones: labels follow the folders
    assert data["test"].images[data["test"].labels == 1].mean() > 150
    write_class_folders(tmp_path / "split", split=True, per_class=5)
    split = load_dataset("folders", tmp_path / "split", 24, val_fraction=0.2)
    assert len(split["test"]) == 10 and len(split["train"]) + len(split["val"]) == 10
    (tmp_path / "one" / "husky").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="one sub-folder per class"):
        load_dataset("folders", tmp_path / "one", 24)


def test_ham10000_lesion_level_split_and_masks(tmp_path):
    from gfsr_tf.datasets import detect_kind
    from gfsr_tf.datasets.ham10000 import load_ham10000
    rows = write_ham10000(tmp_path)
    assert detect_kind(tmp_path) == "ham10000"
    data = load_ham10000(tmp_path, 32, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert sum(len(d) for d in data.values()) == 28
    lesion_of = {r["image_id"]: r["lesion_id"] for r in rows}
    lesions = [{lesion_of[n] for n in data[s].names} for s in ("train", "val", "test")]
    assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])
    train = data["train"]
    assert train.images.shape[1:] == (32, 32, 3) and train.lesions.shape == (len(train), 32, 32)
    assert train.class_names[4] == "melanoma" and train.num_classes == 7
    dx = {r["image_id"]: r["dx"] for r in rows}
    assert [("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")[y] for y in train.labels] == \
        [dx[n] for n in train.names]
    # the mask sits on the dark lesion: darker inside than outside
    gray = train.images.mean(-1)
    assert gray[train.lesions].mean() < gray[~train.lesions].mean() - 50


def test_ham10000_bad_inputs_name_the_file(tmp_path):
    from gfsr_tf.datasets.ham10000 import load_ham10000
    write_ham10000(tmp_path / "a", mask_size=(30, 30))
    with pytest.raises(ValueError, match=r"ISIC_0000003_segmentation.png is 30x30 but its image"):
        load_ham10000(tmp_path / "a", 32)
    write_ham10000(tmp_path / "b")
    (tmp_path / "b" / "HAM10000_segmentations_lesion_tschandl" /
     "ISIC_0000005_segmentation.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 images have no lesion mask, e.g. ISIC_0000005"):
        load_ham10000(tmp_path / "b", 32)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "HAM10000_metadata.csv").write_text("image_id,diagnosis\nISIC_1,nv\n")
    with pytest.raises(ValueError, match=r"missing columns \['dx', 'lesion_id'\]"):
        load_ham10000(tmp_path / "c", 32)


def test_real_ham10000_samples_load_with_their_masks(shared_data, tmp_path):
    from gfsr_tf.datasets.ham10000 import load_ham10000
    src = shared_data / "ham10000_samples"
    (tmp_path / "masks").mkdir()
    ids = sorted(p.stem for p in (src / "images").glob("*.jpg"))
    for i in ids:  # the sample keeps masks as masks/<id>.png; add the metadata CSV it lacks
        (tmp_path / f"{i}.jpg").symlink_to(src / "images" / f"{i}.jpg")
        (tmp_path / "masks" / f"{i}.png").symlink_to(src / "masks" / f"{i}.png")
    rows = "".join(f"HAM_{k:07d},{i},nv\n" for k, i in enumerate(ids))
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n" + rows)
    data = load_ham10000(tmp_path, 128, val_fraction=0.2, test_fraction=0.2, seed=0)
    merged = {n: m for d in data.values() for n, m in zip(d.names, d.lesions)}
    fractions = {"ISIC_0024311": 0.295, "ISIC_0027001": 0.204, "ISIC_0027287": 0.577,
                 "ISIC_0027533": 0.199, "ISIC_0027800": 0.139}  # from the sample's SOURCE.md
    for name, fraction in fractions.items():
        assert merged[name].mean() == pytest.approx(fraction, abs=0.01)


def test_gaze_heatmap_peaks_at_the_longest_fixation():
    from gfsr_tf.datasets.egd_cxr import gaze_heatmap
    heat = gaze_heatmap([100, 300, 50], [200, 100, 50], [0.2, 1.5, 0.3], (400, 400), 40, 0.05)
    assert heat.max() == pytest.approx(1.0)
    assert np.unravel_index(heat.argmax(), heat.shape) == (10, 30)   # (y, x) of (300, 100) / 10
    assert heat[20, 10] > 0.05                                       # short fixations count too
    assert not gaze_heatmap([], [], [], (400, 400), 40).any()


def test_egd_cxr_loader_heatmaps_and_patient_split(tmp_path):
    from gfsr_tf.datasets import detect_kind
    from gfsr_tf.datasets.egd_cxr import load_egd_cxr, read_dicom
    sheet = write_egd_cxr(tmp_path, n=18)
    bad = tmp_path / "files" / "broken.dcm"
    bad.write_bytes(b"DICM not really")
    import csv
    with open(tmp_path / "master_sheet.csv", "a", newline="") as f:  # listed, unreadable
        csv.writer(f).writerow(["broken", "files", "s9", "p9", 1, 0, 0])
    assert detect_kind(tmp_path) == "egd_cxr"
    skipped = []
    data = load_egd_cxr(tmp_path, 32, seed=0, skipped=skipped)
    assert skipped == [str(bad)]
    assert sum(len(d) for d in data.values()) == 18
    assert data["train"].images.shape[1:] == (32, 32, 1) and data["train"].num_classes == 3
    patients = {r["dicom_id"]: r["patient_id"] for r in sheet}
    sets = [{patients[n] for n in data[s].names} for s in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    peaks = {r["dicom_id"]: r["peak"] for r in sheet}
    for d in data.values():
        for name, heat in zip(d.names, d.gaze):
            y, x = np.unravel_index(heat.argmax(), heat.shape)
            px, py = peaks[name]
            assert abs(x - px * 32 / 64) <= 1 and abs(y - py * 32 / 80) <= 1
    # MONOCHROME1 is inverted: the same pixels read as MONOCHROME2 give 255 - value
    pixels = np.arange(64 * 80).reshape(80, 64) % 4096
    write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1")
    write_dicom(tmp_path / "m2.dcm", pixels, "MONOCHROME2")
    np.testing.assert_array_equal(read_dicom(tmp_path / "m1.dcm"),
                                  255 - read_dicom(tmp_path / "m2.dcm"))
    (tmp_path / "fixations.csv").write_text("DICOM_ID,X_ORIGINAL,Y_ORIGINAL\nx,1,2\n")
    with pytest.raises(ValueError, match="missing a duration column"):
        load_egd_cxr(tmp_path, 32)


def test_template_annotations_cover_the_intended_regions(tmp_path):
    from gfsr_tf.guidance import load_mask_folder
    from gfsr_tf.guidance.templates import (annotation_source, central_lesion_template,
                                             fundus_disc_template, lung_field_template,
                                             write_template_annotations)
    lungs = lung_field_template((64, 64))
    assert np.array_equal(lungs, lungs[:, ::-1]) and 0.2 < lungs.mean() < 0.4
    assert not lungs[:, 30:34].any()                       # the mediastinum stays unmarked
    yy, xx = np.mgrid[:64, :64]
    fundus = np.zeros((64, 64, 3), np.uint8)
    fundus[np.hypot(yy - 30, xx - 34) < 24] = (180, 90, 40)
    disc = fundus_disc_template(fundus)
    inside = np.hypot(yy - 30, xx - 34) < 24
    assert disc[inside].mean() > 0.6 and not disc[~inside].any()
    skin = np.full((64, 64, 3), 200, np.uint8)
    blob = np.hypot(yy - 36, xx - 28) < 12
    skin[blob] = 60
    skin[5:8, 40:60] = 30                                   # a dark ruler mark at the border
    lesion = central_lesion_template(skin)
    assert (lesion & blob).sum() / (lesion | blob).sum() > 0.8
    images = np.stack([fundus] * 6)
    out = write_template_annotations(images, np.array([0, 1, 0, 1, 2, 2]),
                                     [f"im{i}.png" for i in range(6)], "fundus_disc",
                                     tmp_path / "ann", per_class=1)
    marks = load_mask_folder(out, [f"im{i}" for i in range(6)], (64, 64))
    assert sorted(marks) == [0, 1, 4] and annotation_source(out)["annotator"] == "template"


def test_tfds_builders_for_ham10000_egd_cxr_husky_wolf_and_dermamnist_c(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from gfsr_tf.datasets import tfds_builders as tb
    from gfsr_tf.datasets.egd_cxr import load_egd_cxr
    from gfsr_tf.datasets.ham10000 import load_ham10000

    def prepare(klass, manual, **attrs):
        small = type("Small" + klass.__name__, (klass,), attrs, skip_registration=True)
        builder = small(data_dir=str(tmp_path / "tfds" / klass.__name__))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
        return {s: list(tfds.as_numpy(builder.as_dataset(split=s)))
                for s in ("train", "val", "test")}

    write_ham10000(tmp_path / "ham")
    got = prepare(tb.GfsrHam10000, tmp_path / "ham", IMAGE_SIZE=32)
    expected = load_ham10000(tmp_path / "ham", 32, require_masks=True)
    first = {g["name"].decode(): g for g in got["test"]}
    name = expected["test"].names[0]
    np.testing.assert_array_equal(first[name]["lesion_mask"][..., 0] > 0,
                                  expected["test"].lesions[0])
    assert sum(map(len, got.values())) == 28
    write_egd_cxr(tmp_path / "egd", n=12)
    got = prepare(tb.GfsrEgdCxr, tmp_path / "egd", IMAGE_SIZE=32)
    expected = load_egd_cxr(tmp_path / "egd", 32)
    by_name = {g["name"].decode(): g for s in got.values() for g in s}
    np.testing.assert_allclose(by_name[expected["val"].names[0]]["gaze"], expected["val"].gaze[0])
    write_class_folders(tmp_path / "hw", per_class=10)
    got = prepare(tb.GfsrHuskyWolf, tmp_path / "hw", IMAGE_SIZE=24)
    assert [len(got[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    (tmp_path / "derma").mkdir()
    _write_npz(tmp_path / "derma" / "dermamnist_c_28.npz", shape=(28, 28, 3), classes=7)
    got = prepare(tb.GfsrDermamnistC, tmp_path / "derma", IMAGE_SHAPE=(56, 56, 3))
    assert got["train"][0]["image"].shape == (56, 56, 3) and len(got["test"]) == 4


def test_gaze_and_lesion_masks_become_relevance_masks(tmp_path):
    from gfsr_tf.datasets.egd_cxr import load_egd_cxr
    from gfsr_tf.datasets.ham10000 import load_ham10000
    from gfsr_tf.guidance.masks import relevance_masks
    write_egd_cxr(tmp_path / "egd", n=9)
    train = load_egd_cxr(tmp_path / "egd", 32)["train"]
    np.testing.assert_allclose(relevance_masks(train, "gaze", blur_sigma=0), train.gaze, atol=1e-6)
    with pytest.raises(ValueError, match=r"no lesions masks \(it has: gaze\)"):
        relevance_masks(train, "lesions")
    write_ham10000(tmp_path / "ham")
    ham = load_ham10000(tmp_path / "ham", 32)["train"]
    np.testing.assert_array_equal(relevance_masks(ham, "lesions", blur_sigma=0), ham.lesions)
