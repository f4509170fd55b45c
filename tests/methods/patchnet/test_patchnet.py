"""MedicalPatchNet: the model's decomposition, its patch maps, Eigen-CAM, the OneCycle schedule,
training through the generic loop, saving/loading, and the bad inputs."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.methods.patchnet.model import (PATCH_GRID, PatchMerge, PatchSplit, build_patchnet,
                                     split_patches)
from gfsr_tf.methods.patchnet.patch_maps import patch_logits, patch_saliency, patch_values

SIZE = 32


def _patchnet(patches=4, classes=2, size=SIZE, channels=1, **kw):
    return build_patchnet(classes, (size, size, channels), patches, None, backbone="small_cnn",
                          seed=0, **kw)


def _images(n=3, size=SIZE, channels=1, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(
        np.float32)


def test_split_and_merge_are_row_major_and_inverse():
    image = np.arange(8 * 8, dtype=np.float32).reshape(1, 8, 8, 1)
    tiles = split_patches(image, 2)
    assert tiles.shape == (4, 4, 4, 1)
    # patch i * P + j is rows 4i..4i+3, columns 4j..4j+3
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(tiles[i * 2 + j, ..., 0],
                                          image[0, 4 * i:4 * i + 4, 4 * j:4 * j + 4, 0])
    rows = np.arange(2 * 4 * 3, dtype=np.float32).reshape(8, 3)   # 2 images x 4 patches, K = 3
    grid = np.asarray(PatchMerge(2)(rows))
    assert grid.shape == (2, 2, 2, 3)
    np.testing.assert_array_equal(grid[1, 0, 1], rows[1 * 4 + 0 * 2 + 1])
    # PatchSplit then merging each patch's mean pixel gives the block means in place
    merged = np.asarray(PatchMerge(2)(tiles.mean((1, 2))))
    np.testing.assert_allclose(merged[0, ..., 0], image[0, ..., 0].reshape(2, 4, 2, 4).mean((1, 3)))


def test_image_logit_is_the_mean_of_each_patch_run_alone():
    model = _patchnet(4)
    x = _images(2)
    grid, probs = patch_logits(model, x)
    # the backbone and head on each 8x8 patch as an image of its own
    head = keras.Model(model.get_layer("patch_split").output, model.get_layer("patch_dense").output)
    alone = np.stack([[np.asarray(head(x[b:b + 1, 8 * i:8 * i + 8, 8 * j:8 * j + 8],
                                       training=False))[0]
                       for i in range(4) for j in range(4)] for b in range(2)])
    np.testing.assert_allclose(grid.reshape(2, 16, -1), alone, atol=1e-5)
    logits = keras.Model(model.input, model.get_layer("logits").output)(x, training=False)
    np.testing.assert_allclose(np.asarray(logits), alone.mean(1), atol=1e-5)
    np.testing.assert_allclose(probs[:, 0], 1 / (1 + np.exp(-alone.mean(1)[:, 0])), atol=1e-5)


def test_one_patch_equals_the_plain_model_with_the_same_weights():
    from gfsr_tf.models.classifier import small_cnn
    model = _patchnet(1)
    backbone = small_cnn((SIZE, SIZE, 1))
    x = keras.layers.GlobalAveragePooling2D()(backbone.output)
    plain = keras.Model(backbone.input, keras.layers.Activation("sigmoid")(
        keras.layers.Dense(1, name="dense_head")(x)))
    for layer in plain.layers:
        if layer.weights:
            source = "patch_dense" if layer.name == "dense_head" else layer.name
            layer.set_weights(model.get_layer(source).get_weights())
    x = _images(3)
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(plain(x, training=False)), atol=1e-6)


def test_scaled_block_map_is_the_probability_times_the_raw_map():
    model = _patchnet(4)
    x = _images(3)
    raw = patch_saliency(model, x, kind="raw", class_index=1)
    scaled = patch_saliency(model, x, kind="scaled", class_index=1)
    grid, probs = patch_logits(model, x)
    np.testing.assert_allclose(raw[:, ::8, ::8], grid[..., 0], atol=1e-5)
    np.testing.assert_allclose(scaled, raw * probs[:, :1, None], atol=1e-5)
    # class 0 of a single-unit head: -z, scaled by 1 - p
    np.testing.assert_allclose(patch_saliency(model, x, kind="scaled", class_index=0),
                               -raw * (1 - probs[:, :1, None]), atol=1e-5)


def test_softmax_patch_maps_centre_each_patchs_logits_over_classes():
    grid = np.array([[[[1.0, 3.0, 8.0]]]])            # one image, one patch, K = 3
    probs = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_allclose(patch_values(grid, probs, [2], "raw", "softmax"), [[[4.0]]])
    np.testing.assert_allclose(patch_values(grid, probs, [0], "scaled", "softmax"),
                               [[[-3.0 * 0.2]]])


def test_gradcam_at_the_logit_grid_is_the_positive_part_of_the_raw_map():
    from gfsr_tf.models import CamModel
    from gfsr_tf.saliency import gradcam
    model = _patchnet(4)
    x = _images(4, seed=3)
    raw = patch_saliency(model, x, kind="raw", class_index=1)[:, ::8, ::8]
    for cls, sign in ((1, 1.0), (0, -1.0)):
        cam = gradcam(CamModel(model, PATCH_GRID), tf.constant(x), tf.constant([cls] * 4),
                      normalise=False)[0].numpy()
        # score = Z = mean of the P^2 patch logits: every channel weight is +-1 / P^2
        np.testing.assert_allclose(cam, np.clip(sign * raw, 0, None) / 16, rtol=1e-4,
                                   atol=1e-9)


def _mean_patch_model():
    """A "backbone" whose patch logit is the patch's mean pixel: 8x8x1 input, P = 2 (p = 4)."""
    inputs = keras.Input((8, 8, 1))
    tiles = PatchSplit(2)(inputs)
    z = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")(
        keras.layers.GlobalAveragePooling2D()(tiles))
    grid = PatchMerge(2, name=PATCH_GRID)(z)
    logits = keras.layers.GlobalAveragePooling2D(name="logits")(grid)
    return keras.Model(inputs, keras.layers.Activation("sigmoid")(logits))


def test_shifted_grid_smoothing_by_hand():
    # all-ones 8x8 image, p = 4, o = 2: shifts s in {-2, 0} per axis. Along one axis, shift -2
    # reads I(u - 2): patches hold 2/4 and 4/4 ones -> painted [.5]*4 + [1]*4, moved back by -2
    # -> [.5, .5, 1, 1, 1, 1, 0, 0]; shift 0 gives ones. Patch means factor over the axes, so
    # the map is the outer product of the per-axis sums over 2 x 2 shifts / 4.
    along = np.array([0.5, 0.5, 1, 1, 1, 1, 0, 0]) + 1.0
    expected = np.outer(along, along) / 4
    got = patch_saliency(_mean_patch_model(), np.ones((1, 8, 8, 1), np.float32), offset=2,
                         kind="raw", class_index=1)[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[0, 0] == pytest.approx(0.5625) and got[7, 7] == pytest.approx(0.25)
    # o = p: the block map, the plain patch means
    np.testing.assert_allclose(patch_saliency(_mean_patch_model(), np.ones((1, 8, 8, 1)),
                                              offset=4, class_index=1)[0], np.ones((8, 8)))


def test_patch_maps_do_not_depend_on_the_batch_size():
    model = _patchnet(4)
    x = _images(5, seed=1)
    for kind in ("raw", "scaled"):
        a = patch_saliency(model, x, kind=kind, offset=4, batch_size=5)
        b = patch_saliency(model, x, kind=kind, offset=4, batch_size=2)
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_eigencam_recovers_a_rank_one_pattern():
    from gfsr_tf.saliency.posthoc import eigen_projection
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (6, 5))
    v = rng.uniform(0.2, 1, 7)
    acts = (u[..., None] * v)[None]          # (1, 6, 5, 7) rank one
    expected = np.maximum(u - u.mean(), 0)
    expected /= expected.max()
    np.testing.assert_allclose(eigen_projection(acts)[0], expected, atol=1e-6)
    # the sign is fixed by the channel-mean map, not by the SVD solver
    np.testing.assert_allclose(eigen_projection(-acts + 2 * acts.max())[0],
                               np.maximum(u.mean() - u, 0) / (u.mean() - u).max(), atol=1e-6)


def test_eigencam_runs_on_a_keras_application():
    from gfsr_tf.saliency.posthoc import explain_posthoc
    # its own head; the last conv stage is 3x3 at 96 px
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None, classes=3)
    heat = explain_posthoc(model, _images(2, size=96, channels=3), "eigencam").heatmaps
    from gfsr_tf.saliency.posthoc import eigen_projection
    acts = keras.Model(model.input, model.get_layer("out_relu").output)(
        _images(2, size=96, channels=3), training=False)
    expected = tf.image.resize(eigen_projection(np.asarray(acts))[..., None], (96, 96),
                               method="bilinear")[..., 0].numpy()
    assert np.ptp(expected) > 0.5
    np.testing.assert_allclose(heat, expected, atol=1e-5)


def test_one_cycle_schedule_follows_the_formula():
    from gfsr_tf.training.schedules import one_cycle
    peak, total = 1e-4, 1000
    assert one_cycle(0, total, peak) == pytest.approx(peak / 25)
    assert one_cycle(49, total, peak) == pytest.approx(peak)            # 5 % of the steps
    assert one_cycle(999, total, peak) == pytest.approx(peak / 25 / 1e4)
    halfway_up = one_cycle(24.5, total, peak)
    assert halfway_up == pytest.approx((peak + peak / 25) / 2)          # cosine midpoint


def test_twin_differing_in_one_patch_moves_only_that_patch_logit():
    model = _patchnet(4)
    x = _images(2, seed=5)
    twin = x.copy()
    twin[:, 9:14, 17:22] = 0.7            # inside patch (1, 2) only
    z, _ = patch_logits(model, x)
    z_twin, _ = patch_logits(model, twin)
    delta = z - z_twin
    outside = np.ones((4, 4), bool)
    outside[1, 2] = False
    assert np.abs(delta[:, outside]).max() <= 1e-5
    assert np.abs(delta[:, 1, 2]).min() > 1e-4
    logits = keras.Model(model.input, model.get_layer("logits").output)
    dz = np.asarray(logits(x, training=False)) - np.asarray(logits(twin, training=False))
    np.testing.assert_allclose(dz, delta.mean((1, 2)), atol=1e-6)


def test_training_two_steps_through_the_generic_loop(tmp_path):
    from gfsr_tf.config import StudyConfig, TrainConfig
    from gfsr_tf.datasets.synthetic import make_split
    from gfsr_tf.config import BenchmarkConfig
    from gfsr_tf.methods import get_method
    from gfsr_tf.training import Trainer
    method = get_method("patchnet")
    study = StudyConfig()
    study.model.weights = None
    study.train = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2, optimizer="adamw",
                              lr_schedule="onecycle")
    options = method.make_config({"backbone": "small_cnn"})
    train = make_split(BenchmarkConfig(image_size=SIZE, seed=0), "train", 8)
    model = method.build_model(study, options, 2, (SIZE, SIZE, 3), [])
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = Trainer(model, tmp_path, method.step_factory(options, study), train=study.train,
                      verbose=0).fit(train, train)
    assert np.isfinite(history[0]["loss"]) and np.isfinite(history[0]["val_loss"])
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    # the explanation the evaluators read: the raw map, positive part, max-normalised
    x = np.asarray(method.preprocessor and __import__("gfsr_tf.preprocessing", fromlist=["x"])
                   .get_preprocessor(method.preprocessor)(train.images[:2]))
    heat = method.explain(model, x, class_index=train.labels[:2]).heatmaps
    assert heat.shape == (2, SIZE, SIZE) and heat.max() <= 1


def test_saved_patch_model_loads_in_a_fresh_process(tmp_path):
    model = _patchnet(4)
    model.save(tmp_path / "m.keras")
    x = _images(2)
    np.save(tmp_path / "x.npy", x)
    expected = np.asarray(model(x, training=False))
    code = (f"import numpy as np, keras, gfsr_tf.models\n"
            f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
            f"print(np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}), training=False)).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]), expected,
                               atol=1e-6)


def test_bad_inputs_are_clear_errors():
    from gfsr_tf.methods import get_method
    with pytest.raises(ValueError, match="image size 30 is not divisible by patches P = 4"):
        build_patchnet(2, (30, 30, 1), 4, None, backbone="small_cnn")
    with pytest.raises(ValueError, match="patch size 16 px .* below the resnet50 backbone's "
                                         "minimum input of 32 px"):
        build_patchnet(2, (64, 64, 1), 4, None)
    with pytest.raises(ValueError, match="offset o = 3 must divide the patch size p = 8"):
        patch_saliency(_patchnet(4), _images(1), offset=3)
    with pytest.raises(ValueError, match="guided focus is not defined for a patch model"):
        get_method("patchnet").make_config({"weight": 1.0})
    with pytest.raises(ValueError, match="has no 'patch_logits' layer"):
        patch_logits(keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None),
                     _images(1, channels=3))


def test_maps_and_masks_that_do_not_match_are_clear_errors():
    from gfsr_tf.metrics import hit_rate
    from gfsr_tf.metrics.faithfulness import deletion_insertion
    masks = np.zeros((3, 8, 8), bool)
    with pytest.raises(ValueError, match="2 maps but 3 masks"):
        hit_rate(np.zeros((2, 8, 8)), masks)
    nan = np.zeros((3, 8, 8))
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="saliency maps contain NaN"):
        hit_rate(nan, masks)
    with pytest.raises(ValueError, match="maps contain NaN or inf"):
        deletion_insertion(lambda x: np.ones((len(x), 2)), np.zeros((3, 8, 8, 1)), nan, 1, 0.0)


def _experiment(*args, timeout=600):
    from conftest import REPO as repo
    return subprocess.run([sys.executable, str(repo / "experiments" / "patchnet.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # ~16 s; PatchNet's model, maps and fresh-process load stay in the default suite
def test_patchnet_experiment_smoke_writes_every_section(tmp_path):
    r = _experiment("--smoke", "--quiet", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    root = tmp_path / "patchnet_smoke"
    report = json.loads((root / "report.json").read_text())
    maps = report["patchnet"]["maps"]
    assert {"patch_raw_o32", "patch_scaled_o32", "patch_raw_o8", "patch_scaled_o8"} <= set(maps)
    assert {"gradcam@conv5_block3_out", "gradcam++@conv3_block4_out",
            "eigencam@conv5_block3_out"} <= set(report["baseline"]["maps"])
    for entry in (*maps.values(), *report["baseline"]["maps"].values()):
        assert {"hit_rate_macro", "miou_tp_macro", "miou_tpfpfn_macro", "deletion_auc",
                "insertion_auc", "marker_argmax_share"} <= set(entry)
    twins = report["patchnet"]["patch_twins"]
    assert twins["max_abs_change_outside_marker_patches"] <= 1e-5
    assert twins["max_decomposition_error"] <= 1e-5
    assert "auc" in report["comparisons"]["patchnet"]["test_correlated"]
    assert (root / "patch_maps.png").stat().st_size > 10_000
    assert "Explanation maps against the lesion masks" in (root / "summary.md").read_text()


def test_patchnet_experiment_bad_input_exits_one_with_one_line(tmp_path):
    r = _experiment("--smoke", "--image-size", "33", "--out", str(tmp_path))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "error: image size 33 is not divisible by patches P = 2"


def test_block_map_for_scoring_is_the_grid_upsampled_bilinearly_and_passes_are_reused():
    from gfsr_tf.methods.patchnet import patch_maps as patches
    model = _patchnet(4)
    x = _images(3, seed=7)
    grid, _ = patch_logits(model, x)
    smooth = patches.patch_maps(model, x, class_index=1, kinds=("raw",), paint="bilinear")["raw"]
    expected = tf.image.resize(grid[..., :1].astype(np.float32), (SIZE, SIZE),
                               method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(smooth, expected, atol=1e-6)
    with pytest.raises(ValueError, match="bilinear for the unshifted map"):
        patches.patch_maps(model, x, offset=4, paint="bilinear")
    # a second class / kind of the same images runs no new pass
    calls = []
    original = patches.patch_logits
    patches.patch_logits = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        patches.patch_maps(model, x, offset=4, class_index=0, kinds=("scaled",))
        first = len(calls)
        patches.patch_maps(model, x, offset=4, class_index=1, kinds=("raw",))
    finally:
        patches.patch_logits = original
    assert len(calls) == first
