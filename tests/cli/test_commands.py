"""The `gfsr` command line on the main job's smoke run: explain, evaluate, masks, and the installed
console script in a fresh process (exit 0 on success, 1 with one line on bad input)."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, gfsr_console

from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.presets import preset


def test_cli_explain_any_image_format_matches_model_predictions(smoke_report, tmp_path):
    import keras
    from gfsr_tf.cli import main, run as cli
    from gfsr_tf.datasets.images import image_files, load_images
    from gfsr_tf.preprocessing import preprocess
    _, run = smoke_report
    folder = tmp_path / "images"
    folder.mkdir()
    images = make_split(preset("smoke").benchmark, "test_decorrelated", 3).images[..., 0]
    cv2.imwrite(str(folder / "a.png"), images[0].astype(np.uint16) * 257)        # 16-bit gray
    rgba = np.dstack([np.repeat(images[1][..., None], 3, -1), np.full((32, 32), 255, np.uint8)])
    cv2.imwrite(str(folder / "b.png"), rgba)                                       # RGBA
    cv2.imwrite(str(folder / "c.jpg"), np.repeat(images[2][..., None], 3, -1))    # RGB JPEG
    out = tmp_path / "explained"
    model_path = run / "gfsr" / "best.keras"
    rows = cli(["explain", "--model", str(model_path), str(folder), "--out", str(out), "--quiet"])
    assert [Path(r["file"]).name for r in rows] == ["a.png", "b.png", "c.jpg"]
    for r in rows:
        overlay = cv2.imread(r["overlay"])
        assert overlay.shape == (32, 32, 3)
    x = load_images(image_files([folder]), 32, 1)
    np.testing.assert_array_equal(x[0, ..., 0], images[0])  # 16-bit scaled back exactly
    np.testing.assert_array_equal(x[1, ..., 0], images[1])  # opaque RGBA -> the same gray
    expected = keras.models.load_model(model_path).predict(preprocess(x).numpy(), verbose=0)[:, 0]
    np.testing.assert_allclose([r["p_pneumonia"] for r in rows], expected, rtol=1e-4, atol=1e-6)
    assert (out / "predictions.csv").read_text().startswith("file,overlay,explained_class")
    with pytest.raises(SystemExit, match="no such image"):
        main(["explain", "--model", str(model_path), str(tmp_path / "missing.png")])
    with pytest.raises(SystemExit, match="model not found"):
        main(["explain", "--model", str(tmp_path / "none.keras"), str(folder)])


def test_explain_shows_the_map_the_model_card_says_the_model_was_trained_towards(smoke_report,
                                                                               tmp_path):
    """A model card with saliency "layercam" (a gfsr model trained towards its LayerCAM): `gfsr
    explain` overlays LayerCAM by default - pixel for pixel the overlay of
    `explain(..., rule="layercam")`, not the Grad-CAM's."""
    import keras
    from gfsr_tf.cli import run as cli
    from gfsr_tf.cli.explain import overlay
    from gfsr_tf.datasets.images import read_image
    from gfsr_tf.preprocessing import preprocess
    from gfsr_tf.saliency import explain
    _, run = smoke_report
    model_path = tmp_path / "layercam.keras"
    model_path.write_bytes((run / "gfsr" / "best.keras").read_bytes())
    card = json.loads((run / "gfsr" / "best.json").read_text())
    assert card["saliency"] == "gradcam"          # what the run wrote for the paper's loss
    (tmp_path / "layercam.json").write_text(json.dumps({**card, "saliency": "layercam"}))
    image = make_split(preset("smoke").benchmark, "test_decorrelated", 1).images[0]
    cv2.imwrite(str(tmp_path / "x.png"), image)
    model = keras.models.load_model(model_path)
    x = preprocess(image[None].astype(np.float32)).numpy()
    rows = cli(["explain", "--model", str(model_path), str(tmp_path / "x.png"), "--out",
                str(tmp_path / "out"), "--quiet"])
    shown = cv2.imread(rows[0]["overlay"])[..., ::-1]
    original = read_image(tmp_path / "x.png", 1)
    want = {rule: overlay(original, explain(model, x, layer=card["target_layer"],
                                            rule=rule).heatmaps[0].clip(0, 1))
            for rule in ("layercam", "gradcam")}
    np.testing.assert_array_equal(shown, want["layercam"])
    assert not np.array_equal(shown, want["gradcam"])


def test_cli_evaluate(smoke_report, tmp_path):  # export: the console-script test below
    from gfsr_tf.cli import run as cli
    report, run = smoke_report
    evaluated = cli(["evaluate", "--model", str(run / "gfsr" / "best.keras"), "--out",
                      str(tmp_path), "--name", "ev"])
    # the model card's config rebuilds the same test data: the same accuracy as the run's report
    assert evaluated["model"]["metrics"]["test_decorrelated"]["accuracy"] == \
        report["gfsr"]["metrics"]["test_decorrelated"]["accuracy"]
    assert (tmp_path / "ev" / "report.html").exists()


def test_cli_masks_on_the_benchmark(tmp_path):
    from gfsr_tf.cli import main, run as cli
    section = cli(["masks", "--size", "32", "--n-images", "24", "--k", "4", "--n-segments", "20",
                    "--weights", "none", "--out", str(tmp_path), "--quiet"])
    assert len(list((tmp_path / "masks").glob("*.png"))) == 24
    assert (tmp_path / "concepts.png").exists() and section["lung_pixel_auc"] > 0.5
    assert json.loads((tmp_path / "masks.json").read_text())["n_annotated_images"] == 10
    placed = cli(["masks", "--size", "32", "--n-images", "24", "--k", "4", "--n-segments", "20",
                  "--weights", "none", "--position-weight", "16", "--out", str(tmp_path / "p"),
                  "--quiet"])
    assert placed["config"]["position_weight"] == 16
    assert placed["concept_scores"] != section["concept_scores"]
    with pytest.raises(SystemExit, match="needs --annotations"):
        main(["masks", "--images", str(tmp_path / "masks"), "--out", str(tmp_path / "m2")])


def test_console_script_exits_zero_on_success_and_one_on_bad_input(smoke_report, tmp_path):
    _, run = smoke_report
    r = gfsr_console("export", "--model", str(run / "gfsr" / "best.keras"), "--out",
              str(tmp_path / "serving" / "1"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count(str(tmp_path / "serving" / "1")) == 1  # printed once, not echoed again
    # TensorFlow's start-up lines (oneDNN, "could not find cuda drivers", the cuInit error on a
    # machine without a GPU) are kept out of the command's output
    from gfsr_tf.cli.common import STARTUP_CHATTER
    assert not [line for line in r.stderr.splitlines()
                if any(chatter in line for chatter in STARTUP_CHATTER)], r.stderr[-2000:]
    assert (tmp_path / "serving" / "1" / "saved_model.pb").exists()
    assert json.loads((tmp_path / "serving" / "1" / "signatures.json").read_text())
    r = gfsr_console("export", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: model not")
    assert "Traceback" not in r.stderr


def test_explain_warns_on_saturated_predictions_and_empty_maps_and_overlays_at_image_size(
        tmp_path):
    """A third-party model trained on [0, 1] pixels, explained without a model card: fed 0-255 it
    predicts p = 1.0 on every image, and the user is told which --preprocess to try; the overlays
    keep each image's own size; an all-zero map is flagged per image and counted."""
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="features",
                            kernel_initializer="ones")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones",
                             bias_initializer=keras.initializers.Constant(-54.0))(
        keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, out).save(tmp_path / "unit_model.keras")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (64, 48), (33, 33)]):
        cv2.imwrite(str(tmp_path / f"x{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    images = [str(tmp_path / f"x{i}.png") for i in range(3)]
    r = gfsr_console("explain", "--model", str(tmp_path / "unit_model.keras"), *images,
                     "--out", str(tmp_path / "raw"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3 of 3 predictions are saturated" in r.stderr and "--preprocess one of" in r.stderr
    rows = json.loads((tmp_path / "raw" / "predictions.json").read_text())
    assert [cv2.imread(row["overlay"]).shape[:2] for row in rows] == [(40, 50), (64, 48), (33, 33)]
    # the ones-kernel features are positive everywhere and the score rises with each of them:
    # the maps are real, not empty
    assert [row["heatmap_empty"] for row in rows] == [False] * 3
    r = gfsr_console("explain", "--model", str(tmp_path / "unit_model.keras"), *images,
                     "--preprocess", "unit", "--out", str(tmp_path / "unit"), "--quiet")
    assert r.returncode == 0 and "saturated" not in r.stderr
    # class 0 of this model: every ones-kernel feature lowers its score, so Grad-CAM's ReLU
    # empties the map: flagged per image and counted on stderr
    r = gfsr_console("explain", "--model", str(tmp_path / "unit_model.keras"), *images,
                     "--preprocess", "unit", "--class-index", "0", "--out",
                     str(tmp_path / "empty"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads((tmp_path / "empty" / "predictions.json").read_text())
    assert [row["heatmap_empty"] for row in rows] == [True] * 3
    assert "3 of 3 heatmaps are all zero" in r.stderr


def test_an_empty_or_corrupt_model_file_is_named_for_what_it_is(smoke_report, tmp_path):
    """Keras says "File not found" for files that exist: the user is told the file is empty or
    not a .keras archive (a truncated copy of a real model included), exit 1, one line."""
    _, run = smoke_report
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32), np.uint8))
    from gfsr_tf.artifacts import load_model
    real = (run / "baseline" / "best.keras").read_bytes()
    cases = (("empty.keras", b"", "the file is empty (0 bytes)"),
             ("text.keras", b"not a model", "not a .keras archive"),
             ("truncated.keras", real[:len(real) // 2], "not a .keras archive"))
    for name, content, message in cases:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=re.escape(message)):
            load_model(tmp_path / name)
    # as the user meets it: the console script, exit 1, one line
    r = gfsr_console("explain", "--model", str(tmp_path / "truncated.keras"), str(image), "--out",
                     str(tmp_path / "out"))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("error: cannot load") and \
        "not a .keras archive" in last
    assert "File not found" not in r.stderr and "Traceback" not in r.stderr


def test_explain_refuses_a_1x1_image_and_warns_on_a_constant_one(tmp_path):
    """A 1x1 PNG once predicted p = 0.93 silently; it is refused in one line (exit 1), and a
    constant image that is large enough is explained with a warning."""
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu", name="features")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, out).save(tmp_path / "m.keras")
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((20, 20), 90, np.uint8))
    r = gfsr_console("explain", "--model", str(tmp_path / "m.keras"), str(tmp_path / "dot.png"),
                     "--out", str(tmp_path / "a"))
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("error:") and "1x1 px, below the minimum" in last
    r = gfsr_console("explain", "--model", str(tmp_path / "m.keras"), str(tmp_path / "flat.png"),
                     "--out", str(tmp_path / "b"), "--quiet")
    assert r.returncode == 0 and "1 image(s) are a single grey level (flat.png)" in r.stderr


@pytest.mark.parametrize("script,offers_gfsr_options", [
    ("pneumonia_gfsr", True), ("patchnet", False),
    pytest.param("segx", False, marks=pytest.mark.slow)])   # segx loads TensorFlow: ~12 s
def test_each_experiment_offers_only_its_own_options(script, offers_gfsr_options):
    """MedicalPatchNet and SegX train no GFSR variant: --lambda/--layer/--masks/--annotations are
    not theirs to offer, and passing one is a usage error rather than silently ignored."""
    import subprocess
    import sys
    path = str(REPO / "experiments" / f"{script}.py")
    help_text = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    for option in ("--lambda", "--layer", "--masks", "--annotations"):
        assert (option in help_text) == offers_gfsr_options, (script, option)
    if not offers_gfsr_options:
        r = subprocess.run([sys.executable, path, "--lambda", "2"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode != 0 and "unrecognized arguments: --lambda" in r.stderr


def test_a_variant_that_cannot_train_fails_before_the_first_model_trains(tmp_path):
    """Found late once: PatchNet's image-size check ran after the P = 1 model had trained, and
    annotations without any marked segment failed only after the baseline had trained. Both are
    now one `error:` line before any training."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(REPO / "experiments" / "patchnet.py"), "--smoke",
                        "--image-size", "31", "--out", str(tmp_path / "pn"), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == \
        "error: image size 31 is not divisible by patches P = 2"
    assert not list((tmp_path / "pn").rglob("*.keras")) and not list(
        (tmp_path / "pn").rglob("metrics.jsonl"))
    # class folders with a segment JSON that marks no segment on its images
    from PIL import Image
    from gfsr_tf.presets import preset
    from gfsr_tf.study.data import load_data
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("normal", "pneumonia"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(12):
                Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(
                    folder / f"{split}_{label}_{i}.png")
    config = preset("pneumoniamnist", smoke=True)
    config.data_dir = str(tmp_path / "data")
    train = load_data(config)["train"]
    (tmp_path / "marks.json").write_text(json.dumps(
        {name.rsplit(".", 1)[0]: [] for name in train.names[:4]}))
    r = gfsr_console("train", "--preset", "pneumoniamnist", "--smoke", "--data-dir",
                     str(tmp_path / "data"), "--masks", "annotations", "--annotations",
                     str(tmp_path / "marks.json"), "--out", str(tmp_path / "runs"), "--quiet")
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no marked pixels or segments in") and \
        last.endswith("nothing to learn relevance from")
    assert not list((tmp_path / "runs").rglob("*.keras")) and not list(
        (tmp_path / "runs").rglob("metrics.jsonl"))
