"""The gaze foundation: fixation heatmaps (EGD-CXR fixes), the embedded simulation and its
on-disk round trip, heatmap-vs-heatmap metrics, per-class AUC tables, the gaze U-Net method."""
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.config import BenchmarkConfig, TrainConfig
from gfsr_tf.datasets.egd_cxr import gaze_heatmap, heart_from_mediastinum, load_egd_cxr
from gfsr_tf.datasets.gaze_sim import (make_gaze_split, original_shape, scaled_sigma,
                                       write_egd_cxr_layout)
from gfsr_tf.metrics import auc_table, heatmap_metrics
from gfsr_tf.training.schedules import cyclic_multiplier, learning_rate


# ---------------------------------------------------------------------------- gaze heatmaps

def test_off_image_fixations_change_nothing_and_are_counted():
    xs, ys, d = [120.0, 40.0, 300.0], [50.0, 210.0, 380.0], [0.4, 0.2, 0.9]
    clean = gaze_heatmap(xs, ys, d, (400, 320), 32, sigma_px=30)
    counts = {}
    noisy = gaze_heatmap(xs + [-1, -1, 320, np.nan], ys + [-1, 5, 10, 3], d + [0.5, 0.5, 0.5, 0.5],
                         (400, 320), 32, sigma_px=30, counts=counts)
    np.testing.assert_array_equal(noisy, clean)
    assert counts == {"off_image": 3, "non_finite": 1}
    assert noisy[0, 0] < 0.01          # no hot spot in the corner where markers sit


def test_count_and_duration_weighting_move_the_peak_as_constructed():
    # one long fixation at A, three short ones at B
    xs, ys = [50, 250, 250, 250], [50, 250, 250, 250]
    d = [2.0, 0.2, 0.2, 0.2]
    by_duration = gaze_heatmap(xs, ys, d, (300, 300), 30, weighting="duration")
    by_count = gaze_heatmap(xs, ys, d, (300, 300), 30, weighting="count")
    assert np.unravel_index(by_duration.argmax(), (30, 30)) == (5, 5)
    assert np.unravel_index(by_count.argmax(), (30, 30)) == (25, 25)


def test_anisotropic_sigma_second_moments():
    """sigma_px in original pixels becomes sigma_px * size / w across and * size / h down."""
    heat = gaze_heatmap([100.0], [200.0], [1.0], (400, 200), 128, sigma_px=20).astype(np.float64)
    ys, xs = np.mgrid[0:128, 0:128]
    w = heat / heat.sum()
    var_x = (w * (xs - (w * xs).sum()) ** 2).sum()
    var_y = (w * (ys - (w * ys).sum()) ** 2).sum()
    assert np.sqrt(var_x) == pytest.approx(20 * 128 / 200, rel=0.05)
    assert np.sqrt(var_y) == pytest.approx(20 * 128 / 400, rel=0.05)


@pytest.mark.parametrize("kwargs, match", [
    (dict(xs=[1, 2], ys=[1], durations=[1, 1]), "same length"),
    (dict(xs=[1], ys=[1], durations=[-0.1]), "durations"),
    (dict(xs=[1], ys=[1], durations=[1], sigma_px=0), "sigma_px"),
    (dict(xs=[1], ys=[1], durations=[1], sigma_fraction=-1), "sigma_fraction"),
    (dict(xs=[1], ys=[1], durations=[1], weighting="time"), "weighting"),
])
def test_gaze_heatmap_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaze_heatmap(original_shape=(10, 10), size=8, **kwargs)


def test_heart_is_the_mediastinum_without_its_top_third():
    m = np.zeros((12, 6), bool)
    m[3:12, 2:4] = True                                  # rows 3..11: nine rows
    heart = heart_from_mediastinum(m)
    assert not heart[:6].any() and heart[6:12, 2:4].all()


# ------------------------------------------------------------------------------ simulation

@pytest.fixture(scope="module")
def simulation():
    return BenchmarkConfig(image_size=32, n_train=6, n_val=3, n_test=3, seed=0)


def test_simulation_round_trips_through_the_egd_cxr_layout(simulation, tmp_path):
    write_egd_cxr_layout(tmp_path, simulation)
    counts = {}
    back = load_egd_cxr(tmp_path, 32, sigma_px=scaled_sigma(150, 32), weighting="count",
                        counts=counts)
    loaded = {n: (s, i) for s in back.values() for i, n in enumerate(s.names)}
    memory = [make_gaze_split(simulation, split) for split in ("train", "val", "test")]
    assert sum(len(m) for m in memory) == len(loaded) == 12
    for m in memory:
        for i, name in enumerate(m.names):
            s, j = loaded[name]
            np.testing.assert_allclose(s.gaze[j], m.gaze[i], atol=1e-5)
            np.testing.assert_array_equal(s.images[j], m.images[i])
            assert s.labels[j] == m.labels[i] and s.transcripts[j] == m.transcripts[i]
            for region in ("left_lung", "right_lung", "heart"):
                np.testing.assert_array_equal(s.regions[region][j], m.regions[region][i])
            np.testing.assert_allclose(s.fixations[j], m.fixations[i])
            # the fixations' frame: the DICOM's rows and columns
            assert tuple(s.original_shapes[j]) == tuple(m.original_shapes[i]) == \
                original_shape(32)
    assert counts["off_image"] > 0 and counts.get("non_finite", 0) == 0
    # an image list (a file of dicom_ids) keeps only those; empty and non-numeric fixation
    # cells are skipped and counted
    names = sorted(loaded)[:10]
    (tmp_path / "list.txt").write_text("\n".join(names))
    with open(tmp_path / "fixations.csv", "a") as f:
        # columns: DICOM_ID, Time (in secs), FPOGD, X_ORIGINAL, Y_ORIGINAL
        f.write(f"{names[0]},1.0,,,5\n{names[0]},1.0,0.3,abc,4\n")
    counts = {}
    subset = load_egd_cxr(tmp_path, 32, sigma_px=scaled_sigma(150, 32), weighting="count",
                          image_list=tmp_path / "list.txt", counts=counts)
    assert sorted(n for s in subset.values() for n in s.names) == names
    # each unreadable fixation counted once (not once per bad cell and again per fixation)
    assert counts == {"non_finite": 2, "off_image": counts["off_image"]}


def test_simulation_anatomy_follows_the_patient_convention(simulation):
    d = make_gaze_split(BenchmarkConfig(image_size=32, n_train=30), "train")
    cols = np.arange(32)
    left = (d.regions["left_lung"].sum(1) * cols).sum(1) / d.regions["left_lung"].sum((1, 2))
    right = (d.regions["right_lung"].sum(1) * cols).sum(1) / d.regions["right_lung"].sum((1, 2))
    assert np.all(left > 16) and np.all(right < 16)     # the patient's left = the image's right
    chf, normal = d.labels == 1, d.labels == 0
    heart = d.regions["heart"].sum((1, 2))
    assert heart[chf].mean() > 1.3 * heart[normal].mean()        # enlarged cardiac silhouette
    assert all(len(t) == 3 for t in d.transcripts)
    for fx, transcript in zip(d.fixations, d.transcripts):
        assert transcript[-1][1] >= fx[:, 3].max() - 1.0          # ends after its fixations
        assert np.all(fx[:, :2] >= 0)                             # off-image ones dropped
    # pneumonia images dwell on their lesions: the gaze is hotter there than in clear lung
    pneu = np.flatnonzero(d.labels == 2)
    on = [d.gaze[i][d.lesions[i]].mean() for i in pneu if d.lesions[i].any()]
    lung = [d.gaze[i][(d.lungs[i] > 0.5) & ~d.lesions[i]].mean() for i in pneu
            if d.lesions[i].any()]
    assert np.mean(on) > np.mean(lung)


# ---------------------------------------------------------------------------- metrics

def test_heatmap_ious_pool_one_confusion_matrix():
    gt = np.array([[[1, 0, 0, 0]], [[1, 1, 1, 0]]], float)
    pred = np.array([[[1, 0, 0, 0]], [[1, 0, 0, 0]]], float)
    m = heatmap_metrics(pred, gt)
    assert m["fg_iou"] == pytest.approx(0.5)
    assert m["bg_iou"] == pytest.approx(0.6667, abs=1e-4)
    assert m["fw_iou"] == pytest.approx(0.5833, abs=1e-4)
    # a per-image mean would differ: (1/1 + 1/3) / 2 = 0.667 for the foreground
    assert m["fg_iou"] != pytest.approx((1 + 1 / 3) / 2)


def test_heatmap_errors_and_psnr_by_hand():
    m = heatmap_metrics(np.array([[1, 0.5, 0, 0]]), np.array([[1, 0, 0, 0]]))
    assert m["l1"] == pytest.approx(0.125) and m["l2"] == pytest.approx(0.0625)
    assert m["psnr"] == pytest.approx(12.041, abs=1e-3)
    maps = np.random.default_rng(0).random((2, 16, 16))
    assert heatmap_metrics(maps, maps)["ssim"] == pytest.approx(1.0)
    # maps are max-normalised per image first: a scaled copy is identical
    assert heatmap_metrics(0.5 * maps, maps)["l1"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("pred, target, match", [
    (np.full((1, 4, 4), np.nan), np.zeros((1, 4, 4)), "pred contains NaN"),
    (np.zeros((1, 4, 4)), np.full((1, 4, 4), 1.5), r"target must lie in \[0, 1\]"),
    (np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), "same shape"),
])
def test_heatmap_metrics_bad_input(pred, target, match):
    with pytest.raises(ValueError, match=match):
        heatmap_metrics(pred, target)


def test_no_foreground_anywhere_gives_nan_with_a_warning():
    with pytest.warns(UserWarning, match="no foreground"):
        m = heatmap_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    assert np.isnan(m["fg_iou"]) and m["bg_iou"] == 1.0


def test_auc_tables_against_scikit_learn():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    scores = rng.random((90, 3)) + 0.6 * np.eye(3)[labels]
    table = auc_table(labels, scores, class_names=["a", "b", "c"])
    for c, name in enumerate("abc"):
        assert table[name]["estimate"] == pytest.approx(roc_auc_score(labels == c, scores[:, c]))
        assert table[name]["ci_low"] < table[name]["estimate"] < table[name]["ci_high"]
    assert table["average"]["estimate"] == pytest.approx(np.mean(
        [roc_auc_score(labels == c, scores[:, c]) for c in range(3)]))
    paper = auc_table(labels, scores, scores, class_names=["a", "b", "c"], protocol="paper")
    assert paper["a"]["resamples"] == 30
    assert all(v["estimate"] == 0 and v["p_value"] == 1.0 for v in paper["difference"].values())


def test_cyclic_schedule_by_hand():
    base = 0.01
    assert cyclic_multiplier(0, 5, base) == pytest.approx(base)            # lr**2 at the start
    assert cyclic_multiplier(5, 5, base) == pytest.approx(1.0)             # the full rate
    assert cyclic_multiplier(10, 5, base) == pytest.approx(base)
    assert cyclic_multiplier(15, 5, base) == pytest.approx(base + (1 - base) / 2)  # halved
    train = TrainConfig(learning_rate=base, lr_schedule="triangular2", lr_step_epochs=5)
    assert learning_rate(train, 6) == pytest.approx(base)                 # 1-based epochs
    assert learning_rate(TrainConfig(learning_rate=base), 6) == base


# ---------------------------------------------------------------------------- the U-Net

@pytest.fixture(scope="module")
def unet_case():
    from gfsr_tf.guidance.masks import relevance_masks
    data = make_gaze_split(BenchmarkConfig(image_size=32, n_train=4), "train")
    return data, relevance_masks(data, "gaze", 0.0)


def test_gaze_unet_shapes_views_and_sizes():
    from gfsr_tf.methods.gaze_unet.model import build_gaze_unet, classifier_view
    model = build_gaze_unet(3, (64, 64, 3), None, seed=0)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 3), (None, 64, 64, 1)]
    view = classifier_view(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(view(x)[0], model(x)[0][0], atol=1e-6)   # the same weights
    assert len(build_gaze_unet(3, (32, 32, 3), None, decoder=False).outputs) == 1
    with pytest.raises(ValueError, match="Valid sizes: 32, 64, 96"):
        build_gaze_unet(3, (48, 48, 3), None)


def test_gaze_unet_gradients_reach_encoder_head_and_decoder(unet_case):
    from gfsr_tf.methods.gaze_unet import GazeUnetConfig, GazeUnetStep
    from gfsr_tf.methods.gaze_unet.model import build_gaze_unet
    import keras
    data, masks = unet_case
    model = build_gaze_unet(3, (32, 32, 3), None, seed=0)
    step = GazeUnetStep(model, keras.optimizers.Adam(1e-3), config=GazeUnetConfig(),
                        preprocessor="raw_rgb")
    x = step.preprocess(data.images)
    with tf.GradientTape() as tape:        # one backward pass: fine eagerly
        class_logits, gaze_logits = step._logits(x, training=True)
        loss = 0.4 * tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.one_hot(data.labels, 3), class_logits)) + 0.6 * tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(masks[..., None], gaze_logits))
    names = ["stem_conv", "logits", "decoder1_conv1", "decoder5_conv2", "gaze_logits"]
    variables = [model.get_layer(n).kernel for n in names]
    grads = tape.gradient(loss, variables)
    for name, g in zip(names, grads):
        assert g is not None and np.all(np.isfinite(g)) and np.abs(g).max() > 0, name


@pytest.mark.slow  # three EfficientNet traces: ~1.5 min alone on 2 cores
def test_gaze_unet_trains_and_resumes_exactly(unet_case, tmp_path):
    """Steps through the generic loop with the reference's schedule and clipping; 1 epoch, then
    a resumed run to 2 epochs = 2 epochs at once, bit for bit (the checkpoint holds the decoder
    and the learning rate is re-derived from the epoch)."""
    from gfsr_tf.config import StudyConfig
    from gfsr_tf.methods import get_method
    from gfsr_tf.methods.gaze_unet.model import build_gaze_unet
    from gfsr_tf.training import Trainer
    data, masks = unet_case
    method = get_method("gaze_unet")
    options = method.make_config({})

    def fit(run_dir, epochs, keep=False):
        train = TrainConfig(epochs=epochs, batch_size=2, steps_per_epoch=1, seed=0,
                            lr_schedule="triangular2", lr_step_epochs=1, clip_value=0.1,
                            monitor="last", keep_checkpoints=keep)
        model = build_gaze_unet(3, (32, 32, 3), None, seed=0)
        trainer = Trainer(model, run_dir, method.step_factory(options, StudyConfig()),
                          train=train, verbose=0)
        return model, trainer.fit(data, data, {"mask": masks})

    straight, history = fit(tmp_path / "a", 2)
    assert all(np.isfinite(h["loss"]) and h["gaze_bce"] > 0 for h in history)
    assert history[0]["learning_rate"] < history[1]["learning_rate"]   # lr**2, then lr
    fit(tmp_path / "b", 1, keep=True)                   # "interrupted" after epoch 1
    resumed, history = fit(tmp_path / "b", 2)
    assert [h["epoch"] for h in history] == [1, 2]
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_multi_label_heads_train_and_explain_with_one_sigmoid_per_class():
    import keras
    from gfsr_tf.models import CamModel, build_classifier
    from gfsr_tf.saliency import explain
    from gfsr_tf.training.step import ClassificationStep
    model = build_classifier(3, (32, 32, 3), None, backbone="small_cnn", multi_label=True,
                             seed=0)
    assert CamModel(model).multi_label and not CamModel(
        build_classifier(3, (32, 32, 3), None, backbone="small_cnn")).multi_label
    x = np.random.default_rng(0).uniform(-50, 50, (4, 32, 32, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 1])
    out = explain(model, x, class_index=labels)
    np.testing.assert_allclose(out.probabilities, model(x).numpy(), atol=1e-5)  # sigmoids
    model.get_layer("dropout").rate = 0.0        # the step's forward pass is in training mode
    logits = CamModel(model)(x, training=True)[1].numpy()            # BatchNorm on the batch
    expected = np.mean(np.maximum(logits, 0) - logits * np.eye(3)[labels]
                       + np.log1p(np.exp(-np.abs(logits))))
    step = ClassificationStep(model, keras.optimizers.SGD(0.0), preprocessor="none")
    got = step({"image": tf.constant(x), "label": tf.constant(labels)})["ce"].numpy()
    assert got == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------------------- the experiment

def _experiment(*args, cwd):
    import subprocess
    import sys
    from conftest import REPO
    return subprocess.run([sys.executable, str(REPO / "experiments" / "gaze_unet.py"), *args],
                          capture_output=True, text=True, timeout=900, cwd=cwd)


def test_gaze_experiment_bad_input_is_one_line_and_exit_1(tmp_path):
    r = _experiment("--rows", "unet,nope", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error: unknown row(s)")
    r = _experiment("--data-dir", str(tmp_path / "missing"), cwd=tmp_path)
    assert r.returncode == 1 and "data directory not found" in r.stderr


@pytest.mark.slow  # two EfficientNet rows: ~1.5 min on 2 cores
def test_gaze_experiment_smoke_rows_resume(tmp_path):
    r = _experiment("--smoke", "--seeds", "0", "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    root = tmp_path / "gaze_unet_smoke"
    for f in ("results.md", "results.json", "table1_auc.png", "panels.png"):
        assert (root / f).exists()
    table = (root / "results.md").read_text()
    assert "paper: unet" in table and "| unet@seed0_smoke |" in table and "decoder" in table
    again = _experiment("--smoke", "--seeds", "0", "--out", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 0 and "epoch 1/1" not in again.stdout   # read back, not retrained


@pytest.mark.slow  # a U-Net row and a double-backward row: ~3 min on 2 cores
def test_gaze_experiment_smoke_model_set_row_against_unet(tmp_path):
    r = _experiment("--smoke", "--rows", "unet,set3-gbp", "--seeds", "0", "--out", str(tmp_path),
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "gaze_unet_smoke" / "results.md").read_text()
    assert "Tables 2-4 layout" in table and "| set3-gbp@seed0_smoke | 0.913, 0.921" in table
    assert "| set3-gbp - unet | 0 |" in table and "guided_backprop" in table
    assert "| set3-gbp@seed0_smoke | guided_backprop |" in table     # decoder vs M
    assert (tmp_path / "gaze_unet_smoke" / "panels_set3-gbp.png").exists()


def _blank_fixations(path, keep_first: int = 0):
    """Rewrite fixations.csv with x and y emptied on every row after the first `keep_first`
    images' rows (what an export with lost coordinates looks like)."""
    lines = path.read_text().splitlines()
    ids = list(dict.fromkeys(line.split(",")[0] for line in lines[1:]))
    keep = set(ids[:keep_first])
    out = [lines[0]] + [line if line.split(",")[0] in keep else
                        ",".join(line.split(",")[:3] + ["", ""]) for line in lines[1:]]
    path.write_text("\n".join(out) + "\n")


def test_images_without_usable_fixations_are_reported_and_all_nan_is_refused(simulation,
                                                                             tmp_path):
    """An EGD-CXR folder whose fixations are all NaN once trained towards all-zero maps with
    `warnings: []`; now some empty maps are a report warning and none usable is an error."""
    write_egd_cxr_layout(tmp_path, simulation)
    _blank_fixations(tmp_path / "fixations.csv", keep_first=3)
    warnings, counts = [], {}
    data = load_egd_cxr(tmp_path, 32, counts=counts, warnings=warnings)
    empty = sum(int(not g.max() > 0) for s in data.values() for g in s.gaze)
    assert empty == 12 - 3
    assert any(f"{empty} of 12 images have no usable fixation" in w for w in warnings)
    assert any("non_finite" in w for w in warnings) and counts["non_finite"] > 0
    _blank_fixations(tmp_path / "fixations.csv", keep_first=0)
    with pytest.raises(ValueError, match="no usable fixation for any of the 12 images"):
        load_egd_cxr(tmp_path, 32)


def test_gfsr_train_on_all_nan_fixations_fails_in_one_line_before_training(simulation, tmp_path):
    from conftest import gfsr_console
    write_egd_cxr_layout(tmp_path, simulation)
    _blank_fixations(tmp_path / "fixations.csv", keep_first=0)
    r = gfsr_console("train", "--preset", "egd_cxr", "--data-dir", str(tmp_path), "--smoke",
                     "--out", str(tmp_path / "runs"), "--quiet", timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: no usable fixation for any")
    assert "Traceback" not in r.stderr and not list((tmp_path / "runs").glob("*/*/best.keras"))
