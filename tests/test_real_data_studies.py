"""The real-data experiments (retina, derma, husky-wolf, PneumoniaMNIST) end to end at --smoke
size on fixtures in the datasets' own formats: multi-class metrics, per-preset robustness tests,
template annotations, lesion masks as relevance masks."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import experiment
from real_formats import write_class_folders, write_ham10000

# These studies test data formats, multi-class reports and template annotations: the small CNN
# (ResNet50's stage names at a fraction of the cost) keeps them fast.
SMALL = ["--set", "model.backbone=small_cnn"]

derma_gfsr = experiment("derma_gfsr")
husky_wolf_gfsr = experiment("husky_wolf_gfsr")
pneumonia_gfsr = experiment("pneumonia_gfsr")
retina_gfsr = experiment("retina_gfsr")
segx = experiment("segx")


def _fundus_npz(path, n=(30, 10, 15)):
    """RetinaMNIST layout: RGB fundus-like discs on black, grades 0-4 in turn."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        images = np.zeros((count, 28, 28, 3), np.uint8)
        for i in range(count):
            disc = np.hypot(yy - 14 + rng.integers(-2, 3), xx - 14) < 11
            images[i][disc] = (150 + 15 * (i % 5), 80, 30) + rng.integers(0, 20, 3)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (np.arange(count) % 5).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_retina_smoke_multiclass_report_with_template_annotations(tmp_path):
    arrays = _fundus_npz(tmp_path / "retinamnist.npz")
    report = retina_gfsr.main(["--smoke", "--data-dir", str(tmp_path / "retinamnist.npz"),
                               "--out", str(tmp_path / "runs"), "--quiet", *SMALL])
    labels = arrays["test_labels"][:, 0]
    for name in ("baseline", "gfsr"):
        m = report[name]["metrics"]["test"]
        probs = np.asarray(report[name]["predictions"]["test"])
        assert probs.shape == (15, 5)
        assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
        assert np.asarray(m["confusion_matrix"]).shape == (5, 5) and "roc" not in m
        assert set(m["ci"]["per_class"]) == {f"grade {g}" for g in range(5)}
        assert set(report[name]["robustness"]) == {"selective_blur"}
    diff = report["comparison"]["test"]["accuracy"]["estimate"]
    assert diff == pytest.approx(report["gfsr"]["metrics"]["test"]["accuracy"]
                                 - report["baseline"]["metrics"]["test"]["accuracy"])
    focus = report["gfsr"]["focus"]
    assert focus["region"] == "fundus_disc" and focus["n"] == 15
    assert 0 <= focus["energy_inside"] <= 1 and 0.2 < focus["region_fraction"] < 0.7
    masks = report["masks"]
    assert masks["annotator"] == "template" and masks["n_annotated_images"] == 25
    run = tmp_path / "runs" / "retina_gfsr_smoke"
    assert len(list((run / "template_annotations").glob("*.png"))) == 25
    assert "Annotator: template" in (run / "summary.md").read_text()
    assert report["data"]["train"]["per_class"]["grade 4"] == 6


def test_derma_smoke_on_ham10000_trains_on_lesion_masks(tmp_path):
    write_ham10000(tmp_path / "ham", n=40)
    report = derma_gfsr.main(["--smoke", "--data-dir", str(tmp_path / "ham"), "--masks",
                              "lesions", "--out", str(tmp_path / "runs"), "--quiet", *SMALL])
    assert report["gfsr"]["training"]["history"][-1]["relevance"] > 0
    assert set(report["gfsr"]["robustness"]) == {"periphery_replaced"}
    loc = report["gfsr"]["localization"]
    assert loc["n"] == report["data"]["test"]["n"] and 0 <= loc["lesion_hit_rate"] <= 1
    assert "masks" not in report  # true lesion masks, nothing propagated
    with pytest.raises(SystemExit, match="runs on real data: give --data-dir"):
        derma_gfsr.main(["--smoke", "--out", str(tmp_path / "runs")])


def test_husky_wolf_smoke_from_annotated_segments(tmp_path):
    from gfsr_tf.datasets import load_dataset
    write_class_folders(tmp_path / "hw", per_class=10)
    train = load_dataset("auto", tmp_path / "hw", 32)["train"]
    # "useful segments": a few SLIC segment ids on two images per class
    chosen = [train.names[i] for c in (0, 1) for i in np.flatnonzero(train.labels == c)[:2]]
    (tmp_path / "useful.json").write_text(json.dumps({Path(n).stem: [0, 3, 5] for n in chosen}))
    # streamed as a dataset above the memory threshold is: decoded once into a disk cache,
    # trained from memmaps, masks propagated in shards and read back by row
    report = husky_wolf_gfsr.main(["--smoke", "--data-dir", str(tmp_path / "hw"),
                                   "--annotations", str(tmp_path / "useful.json"),
                                   "--out", str(tmp_path / "runs"), "--quiet", *SMALL,
                                   "--set", "stream_above_mb=0", "--set",
                                   f'image_cache="{tmp_path / "cache"}"'])
    assert report["masks"]["n_annotated_images"] == 4 and report["masks"]["annotator"] == "person"
    assert report["masks"]["storage"].startswith("sharded: ")
    assert report["gfsr"]["training"]["history"][-1]["relevance"] > 0  # masks reached it
    assert len(list((tmp_path / "cache").glob("images-*/pixels.u8"))) == 3   # one per split
    assert report["class_names"] == ["husky", "wolf"]
    assert "periphery_replaced" in report["gfsr"]["robustness"]


@pytest.mark.slow  # ~2 min: propagates masks over all 4,708 training images
def test_real_pneumoniamnist_smoke(shared_data, tmp_path):
    report = pneumonia_gfsr.main(["--preset", "pneumoniamnist", "--smoke", "--data-dir",
                                  str(shared_data / "pneumoniamnist" / "pneumoniamnist.npz"),
                                  "--out", str(tmp_path), "--quiet"])
    assert report["data"]["test"]["n"] == 624 and report["masks"]["annotator"] == "template"
    assert "at_youden_threshold" in report["gfsr"]["metrics"]["test"]


@pytest.mark.slow  # ~20 s; the benchmark PatchNet smoke and the multi-class retina smoke stay
def test_patchnet_smoke_on_ham10000_scores_every_class_with_lesion_masks(tmp_path):
    # seven classes: softmax heads, per-class maps and thresholds, macro means
    patchnet = experiment("patchnet")
    write_ham10000(tmp_path / "ham", n=40)
    report = patchnet.main(["--smoke", "--data-dir", str(tmp_path / "ham"),
                            "--out", str(tmp_path / "runs"), "--quiet"])
    maps = report["patchnet"]["maps"]["patch_raw_o8"]
    present = {str(c) for c in set(report["data"]["test"]["labels"])}
    assert set(maps["per_class"]) <= present and len(maps["per_class"]) >= 2
    hits = [e["hit_rate"] for e in maps["per_class"].values()]
    assert maps["hit_rate_macro"] == pytest.approx(np.nanmean(hits))
    assert "patch_twins" not in report["patchnet"]        # real data: no counterfactual twins


@pytest.mark.slow  # ~13 s on the real HAM10000 sample
def test_segx_smoke_on_ham10000_segments_lesions_and_scores_seven_classes(tmp_path):
    # the lesion masks are the segmenter's target and the ground truth; 7 one-hot classes
    write_ham10000(tmp_path / "ham", n=40)
    report = segx.main(["--smoke", "--data-dir", str(tmp_path / "ham"), "--image-size", "32",
                        "--out", str(tmp_path / "runs"), "--quiet"])
    section = report["segx"]
    assert section["eval_split"] == "test" and section["segmenter"]["region"] == "lesions"
    model = next(iter(section["models"].values()))
    assert len(model["classification"]["per_class"]) == 7
    cell = model["explainers"]["gradcam"]
    # every pair under a test image's true class has that image's lesion as ground truth
    assert cell["n_table3"] <= report["data"]["test"]["n"] and cell["n_pairs"] >= cell["n_table3"]
