"""The methods-side-by-side table: per-seed rows from run folders, the mean and 95% t interval
over seeds by hand, budgets and step costs, and the experiment as a user runs it."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from gfsr_tf.study.compare import (budget, comparison_markdown, comparison_rows,
                                   summary_by_model, write_comparison)

ROOT = Path(__file__).resolve().parents[2]


def test_rows_from_the_smoke_run_and_the_summary_over_seeds_by_hand(smoke_report, tmp_path):
    report, _ = smoke_report
    rows = comparison_rows([report])
    assert [r["model"] for r in rows] == ["baseline", "gfsr", "gfsr_plus"]
    base = rows[0]
    assert base["step_cost"] == pytest.approx(1.0)
    assert base["mask_images"] == 0 and base["group_labels"] == 0
    n_train = report["data"]["train"]["n"]
    assert budget(report, "gfsr_plus") == {"mask_images": n_train, "group_labels": 0}
    # the guided model's own epochs against the baseline's, from the logged seconds
    own = [h["seconds"] for h in report["gfsr_plus"]["training"]["history"]
           if not h.get("shared_from")]
    base_epochs = [h["seconds"] for h in report["baseline"]["training"]["history"]]
    assert rows[2]["step_cost"] == pytest.approx(np.mean(own) / np.mean(base_epochs))
    # three "seeds" with known values: mean and t interval by hand
    seeded = []
    for seed, auc in zip((0, 1, 2), (0.5, 0.6, 0.7)):
        seeded += [dict(r, seed=seed, within_class_marker_auc=auc) for r in rows]
    summary = summary_by_model(seeded)
    plus = next(s for s in summary if s["model"] == "gfsr_plus")
    assert plus["seeds"] == [0, 1, 2]
    assert plus["within_class_marker_auc"] == pytest.approx(0.6)
    assert plus["within_class_marker_auc_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.1
                                                              / math.sqrt(3))
    # goals per seed: counted where judged; a goal no seed could judge (None: no lung masks)
    for r, met in zip([r for r in seeded if r["model"] == "gfsr_plus"],
                      ({"decision": True, "anatomy": None}, {"decision": False, "anatomy": None},
                       {"decision": True, "anatomy": None})):
        r["met"] = met
    judged = next(s for s in summary_by_model(seeded) if s["model"] == "gfsr_plus")
    assert judged["goals_met"] == {"decision": "2/3", "anatomy": "–"}
    table = comparison_markdown(summary, "t")
    assert "| gfsr_plus | 0,1,2 |" in table and "0.600 ± 0.248" in table
    write_comparison([report], tmp_path / "cmp", "smoke")
    saved = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert [s["model"] for s in saved["by_model"]] == ["baseline", "gfsr", "gfsr_plus"]
    assert (tmp_path / "cmp" / "results.png").stat().st_size > 0


def test_bad_input_exits_1_with_one_line_before_any_training(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare_methods.py"),
                        "--seeds", "0,x", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == \
        "error: --seeds 0,x: expected comma-separated integers", r.stderr[-800:]
    assert not any(tmp_path.iterdir())


@pytest.mark.slow   # two seeds of four small-CNN models (~2 min)
def test_the_experiment_runs_seeds_resumably_and_writes_the_table(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "compare_methods.py"), "--smoke",
           "--seeds", "0,1", "--variants", "baseline,gfsr_plus,jtt,dfr", "--set",
           "model.backbone=small_cnn", "--out", str(tmp_path), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((tmp_path / "compare_methods_smoke" / "results.json").read_text())
    assert sorted({(row["model"], row["seed"]) for row in results["rows"]}) == sorted(
        (m, s) for m in ("baseline", "gfsr_plus", "jtt", "dfr") for s in (0, 1))
    dfr = next(s for s in results["by_model"] if s["model"] == "dfr")
    assert dfr["group_labels"] > 0 and dfr["mask_images"] == 0
    assert "| jtt | 0,1 |" in (tmp_path / "compare_methods_smoke" / "results.md").read_text()
    # a rerun reads every finished seed back: no report is rewritten (re-evaluated)
    written = {s: (tmp_path / f"compare_methods_smoke_seed{s}" / "report.json").stat().st_mtime_ns
               for s in (0, 1)}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0
    assert written == {
        s: (tmp_path / f"compare_methods_smoke_seed{s}" / "report.json").stat().st_mtime_ns
        for s in (0, 1)}
    assert json.loads((tmp_path / "compare_methods_smoke" / "results.json").read_text())["rows"] == \
        results["rows"]


def test_a_finished_seed_is_read_back_only_when_it_ran_exactly_this_study(tmp_path):
    from gfsr_tf.presets import preset
    from gfsr_tf.study.compare import finished_report
    config = preset("compare_methods", smoke=True)
    root = tmp_path / config.name
    root.mkdir()
    assert finished_report(config, tmp_path) is None                      # nothing run yet
    report = {"config": json.loads(json.dumps(config.to_dict())),
              **{v.name: {"training": {"seconds": 1.0}} for v in config.variants}}
    (root / "report.json").write_text(json.dumps(report))
    assert finished_report(config, tmp_path) == report
    del report[config.variants[-1].name]                                  # a variant missing
    (root / "report.json").write_text(json.dumps(report))
    assert finished_report(config, tmp_path) is None
    report[config.variants[-1].name] = {"training": {}}
    report["config"]["train"]["epochs"] += 1                              # another study
    (root / "report.json").write_text(json.dumps(report))
    assert finished_report(config, tmp_path) is None
    (root / "report.json").write_text("{")                                # cut off mid-write
    assert finished_report(config, tmp_path) is None


def test_validation_group_accuracy_by_hand():
    """The evaluator's tuning criterion on a constructed validation split whose answer is known:
    a 'model' that predicts the marker, so it is right on the two groups that follow the
    correlation and wrong on the two against it."""
    from types import SimpleNamespace

    from gfsr_tf.datasets.base import ImageSet
    from gfsr_tf.evaluators import classification
    labels = np.array([0] * 9 + [0] * 1 + [1] * 2 + [1] * 8)
    marked = np.array([0] * 9 + [1] * 1 + [0] * 2 + [1] * 8, bool)
    probs = np.where(marked, 0.9, 0.1)
    probs[0] = 0.7     # one unmarked normal wrong too: 8 / 9 right in that group
    val = ImageSet(np.zeros((20, 4, 4, 1), np.uint8), labels, has_marker=marked)
    ctx = SimpleNamespace(splits={"val": val}, tests=[], predict=lambda images, key: probs)
    out = classification.evaluate(ctx)["validation"]
    assert out["group_sizes"] == {"class0_unmarked": 9, "class0_marked": 1,
                                  "class1_unmarked": 2, "class1_marked": 8}
    assert out["group_accuracy"] == pytest.approx({"class0_unmarked": 8 / 9, "class0_marked": 0.0,
                                                   "class1_unmarked": 0.0, "class1_marked": 1.0})
    assert out["worst_group_accuracy"] == 0.0


def test_tuning_keeps_the_setting_with_the_best_worst_group_validation_accuracy(smoke_report):
    """Three settings of one method, copied from a finished run with constructed validation
    figures: the best worst-group accuracy wins, a tie goes to the higher mean group accuracy,
    and the row, the tuning table and the untuned models read as before."""
    import copy

    from gfsr_tf.study.compare import tuning_choices, tuning_markdown
    report = copy.deepcopy(smoke_report[0])
    report["config"]["variants"] = list(report["config"]["variants"])
    groups = ("class0_unmarked", "class0_marked", "class1_unmarked", "class1_marked")
    settings = {"gfsr_plus": (0.7, [0.7, 0.8, 0.8, 0.8]),
                "gfsr_plus@weight=1": (0.5, [0.5, 0.9, 0.9, 0.9]),
                "gfsr_plus@weight=10": (0.7, [0.7, 0.9, 0.9, 0.9])}
    for name, (worst, accuracies) in settings.items():
        report[name] = copy.deepcopy(report["gfsr_plus"])
        report[name]["validation"] = {"worst_group_accuracy": worst,
                                      "group_accuracy": dict(zip(groups, accuracies))}
        if name != "gfsr_plus":
            report["config"]["variants"].append({"name": name, "method": "gfsr",
                                                 "options": {}})
    report["comparisons"]["gfsr_plus@weight=10"] = report["comparisons"]["gfsr_plus"]
    choices = tuning_choices(report)
    assert choices["gfsr_plus"]["chosen"] == "gfsr_plus@weight=10"     # tie on 0.7: mean wins
    assert choices["gfsr_plus"]["val_worst_group_accuracy"] == {
        "weight=3 (default)": 0.7, "weight=1": 0.5, "weight=10": 0.7}
    assert choices["baseline"]["setting"] == "default"
    rows = comparison_rows([report])
    assert [(r["model"], r["setting"]) for r in rows] == [
        ("baseline", "default"), ("gfsr", "weight=1 (default)"), ("gfsr_plus", "weight=10")]
    assert rows[2]["val_worst_group_accuracy"] == 0.7
    assert rows[2]["within_class_marker_auc"] == pytest.approx(
        comparison_rows([smoke_report[0]])[2]["within_class_marker_auc"])
    table = tuning_markdown(rows)
    assert "| gfsr_plus | 0 | weight=3 (default): 0.700, weight=1: 0.500, **weight=10: " \
           "0.700** | weight=10 |" in table


def test_the_tuning_grid_keeps_each_default_under_its_plain_name():
    """Every tuned method: its default in TUNING is the one its variant trains with (so a run at
    the defaults resumes into a tuned one), and the expansion sets the option on the others."""
    from gfsr_tf.methods import get_method
    from gfsr_tf.presets.compare_methods import TUNING, get_config, tuned
    variants = get_config().variants
    assert set(TUNING) <= {v.name for v in variants}
    expanded = tuned(variants)
    assert len(expanded) == len(variants) + 2 * len(TUNING)
    for v in variants:
        if v.name not in TUNING:
            continue
        option, default, others = TUNING[v.name]
        method = get_method(v.method)
        assert getattr(method.make_config(v.options), option) == default, v.name
        mine = [e for e in expanded if e.name.split("@")[0] == v.name]
        assert [e.name for e in mine] == [v.name] + [f"{v.name}@{option}={x:g}" for x in others]
        assert [getattr(method.make_config(e.options), option) for e in mine] == \
            [default, *others]


@pytest.mark.slow   # four small-CNN smoke models (~1 min)
def test_tune_from_the_command_line_trains_each_setting_and_keeps_the_best_on_validation(
        tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "compare_methods.py"), "--smoke",
           "--seeds", "0", "--variants", "baseline,jtt", "--tune", "--set",
           "model.backbone=small_cnn", "--out", str(tmp_path), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "compare_methods_smoke_seed0" / "report.json").read_text())
    settings = ["jtt", "jtt@upweight=4", "jtt@upweight=20"]
    assert [v["name"] for v in report["config"]["variants"]] == ["baseline", *settings]
    worst = {v: report[v]["validation"]["worst_group_accuracy"] for v in settings}
    results = json.loads((tmp_path / "compare_methods_smoke" / "results.json").read_text())
    jtt = next(row for row in results["rows"] if row["model"] == "jtt")
    best = max(worst.values())
    assert jtt["val_worst_group_accuracy"] == best
    assert worst[jtt["variant"]] == best
    assert "## Tuning" in (tmp_path / "compare_methods_smoke" / "results.md").read_text()


def test_a_model_that_puts_every_test_image_in_one_class_is_named_in_a_warning():
    """The comparison's RRR and GAIN rows ended with accuracy 0.50 and AUC up to 0.96: every
    output on one side of 0.5. The study says so; a model with both classes predicted does not
    warn, nor does a split with one class."""
    from gfsr_tf.datasets.base import ImageSet
    from gfsr_tf.evaluators.classification import one_class_warnings
    both = ImageSet(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 0, 1, 1]))
    one = ImageSet(np.zeros((2, 2, 2, 1), np.uint8), np.array([1, 1]))
    section = {"predictions": {"test_decorrelated": [0.6, 0.7, 0.8, 0.9], "test": [0.9, 0.9]},
               "metrics": {"test_decorrelated": {"auc": 1.0}, "test": {"auc": float("nan")}}}
    got = one_class_warnings("gain", section, {"test_decorrelated": both, "test": one})
    assert got == ["gain: every test_decorrelated image is predicted 'pneumonia' at threshold "
                   "0.5 (AUC 1.000): its outputs sit on one side of 0.5; read its AUC and "
                   "ranking figures, not its accuracy (a BatchNorm network trained with extra "
                   "training-mode passes: try re-estimating its statistics, gfsr's "
                   "bn_recalibration)"]
    section["predictions"]["test_decorrelated"] = [0.2, 0.7, 0.8, 0.9]
    assert one_class_warnings("gain", section, {"test_decorrelated": both, "test": one}) == []
    # a constant model (the comparison's Group DRO, seed 2) is called that, not "one side"
    section["predictions"]["test_decorrelated"] = [0.506815] * 4
    assert one_class_warnings("group_dro", section, {"test_decorrelated": both, "test": one}) == [
        "group_dro: every test_decorrelated image gets the same output (p = 0.507): the model "
        "is constant - its accuracy, AUC, audit and maps carry no information about the images"]


def test_error_bars_are_the_range_with_two_seeds_and_the_clipped_t_interval_with_three():
    from gfsr_tf.study.compare import _mean_ci, error_bar
    assert error_bar(0.9, math.nan, [0.9]) is None                          # one seed
    assert error_bar(0.9, 5.0, [0.85, 0.95]) == pytest.approx((0.05, 0.05))  # range, not ±5
    mean, ci = _mean_ci([0.90, 0.95, 0.99])
    below, above = error_bar(mean, ci, [0.90, 0.95, 0.99])
    assert below == pytest.approx(ci)
    assert above == pytest.approx(1.0 - mean)                              # clipped at 1
    assert error_bar(0.55, 0.2, [0.4, 0.55, 0.7], bounds=(0.5, 1.0)) == pytest.approx((0.05, 0.2))
