"""DFR (Kirichenko et al. 2023): on a constructed case whose answer is known - an embedding with
one spurious coordinate (the marker) and one core coordinate (the lesion) - the last layer an
ERM fit put on the marker is retrained onto the lesion; the weights folded into the Dense layer
reproduce scikit-learn's decision; the tuning half stays apart from the retraining half."""
import keras
import numpy as np
import pytest

from gfsr_tf.methods import get_method
from gfsr_tf.methods.dfr import DFRConfig, balanced_draw, retrain_last_layer


def _model(units: int):
    """Inputs are the embeddings themselves: a Dense head on a (2,) vector."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    h = keras.layers.Activation("linear", name="embedding")(inputs)
    return keras.Model(inputs, keras.layers.Dense(
        units, activation="sigmoid" if units == 1 else "softmax")(h))


def _groups_data(n=400, seed=0):
    """90 % of class-1 and 10 % of class-0 images marked (the benchmark's correlation); the
    marker coordinate is clean, the lesion coordinate noisy but causal."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    marked = np.where(labels == 1, rng.random(n) < 0.9, rng.random(n) < 0.1)
    x = np.stack([marked * 2.0 - 1.0 + rng.normal(0, 0.1, n),        # marker: the shortcut
                  labels * 2.0 - 1.0 + rng.normal(0, 0.6, n)], 1)    # lesion: the real signal
    return x.astype(np.float32), labels, marked


def _worst_group(p, labels, marked):
    groups = 2 * labels + marked
    return min(((p > 0.5) == labels)[groups == g].mean() for g in range(4))


@pytest.mark.parametrize("units", [1, 2])
def test_the_head_is_moved_from_the_marker_to_the_lesion(units):
    x, labels, marked = _groups_data()
    model = _model(units)
    head = model.layers[-1]
    # the ERM head: all weight on the marker
    if units == 1:
        head.kernel.assign([[5.0], [0.0]])
    else:
        head.kernel.assign([[-2.5, 2.5], [0.0, 0.0]])
    p = model.predict(x, verbose=0)
    p = p[:, 0] if units == 1 else p[:, 1]
    assert _worst_group(p, labels, marked) < 0.2         # wrong on the groups against the bias
    chosen = retrain_last_layer(model, x, labels, marked, DFRConfig(draws=5))
    p = model.predict(x, verbose=0)
    p = p[:, 0] if units == 1 else p[:, 1]
    assert _worst_group(p, labels, marked) > 0.8
    w = head.kernel.numpy()
    w = w[:, 0] if units == 1 else w[:, 1] - w[:, 0]
    assert abs(w[1]) > 3 * abs(w[0]), w                 # the lesion carries the decision
    assert chosen["retraining_images"] + chosen["tuning_images"] == len(labels)
    assert chosen["c"] in DFRConfig().c_grid


def test_folded_weights_reproduce_scikit_learn_and_draws_are_balanced():
    from sklearn.linear_model import LogisticRegression
    from gfsr_tf.methods.dfr import fit_head
    x, labels, marked = _groups_data(seed=1)
    groups = 2 * labels + marked
    keep = balanced_draw(groups, np.random.default_rng(0))
    assert len(set(np.bincount(groups[keep], minlength=4))) == 1
    w, b = fit_head(x.astype(np.float64), labels, groups, 1.0, 1, np.random.default_rng(0))
    z = (x - x.mean(0)) / (x.std(0) + 1e-8)
    fit = LogisticRegression(l1_ratio=1.0, C=1.0, solver="liblinear").fit(z[keep], labels[keep])
    np.testing.assert_allclose(x @ w + b, fit.decision_function(z), rtol=1e-5, atol=1e-6)


def test_dfr_shares_the_baseline_run_whole_and_needs_group_labels():
    method = get_method("dfr")
    assert method.plain_epochs(method.make_config()) >= 10 ** 6
    from gfsr_tf.presets import preset
    from gfsr_tf.config import VariantConfig
    from gfsr_tf.study.run import plan_shared_epochs
    config = preset("benchmark", smoke=True)
    config.train.epochs = 3
    config.variants = (VariantConfig("baseline", "baseline"), VariantConfig("dfr", "dfr"))
    plan = plan_shared_epochs(config, __import__("pathlib").Path("/tmp/x"))
    assert plan["baseline"]["snapshot_epochs"] == {3}
    assert str(plan["dfr"]["start_from"]).endswith("epoch-3")


@pytest.mark.slow  # a smoke study of two ResNet50 variants: ~40 s
def test_a_study_runs_dfr_after_the_shared_baseline_and_reports_its_choice(tmp_path):
    import json
    from gfsr_tf.config import VariantConfig
    from gfsr_tf.presets import preset
    from gfsr_tf.study import run_study
    config = preset("benchmark", smoke=True)
    config.variants = (VariantConfig("baseline", "baseline"), VariantConfig("dfr", "dfr",
                                                                            {"draws": 2}))
    run_study(config, tmp_path, verbose=0)
    run = tmp_path / config.name
    report = json.loads((run / "report.json").read_text())
    d = report["dfr"]["training"]["dfr"]
    assert d["retraining_images"] + d["tuning_images"] == report["data"]["val"]["n"]
    assert json.loads((run / "dfr" / "best.json").read_text())["dfr"]["c"] == d["c"]
    # the same features as the baseline, another head: the predictions differ
    assert report["dfr"]["predictions"]["test_decorrelated"] != \
        report["baseline"]["predictions"]["test_decorrelated"]
    assert "Deep Feature Reweighting" in (run / "summary.md").read_text()
