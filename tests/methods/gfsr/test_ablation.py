import json
import math

import pytest

from gfsr_tf.methods.gfsr.describe import GOALS, SHORTCUT_ISSUE_GOALS, gap_closed, goals_met
from gfsr_tf.methods.gfsr.preset import ROWS, row_config, run_ablation
from gfsr_tf.methods.gfsr.study import markdown_table, replicate_table


def test_rows_differ_only_in_what_they_ablate():
    base, paper = row_config("baseline"), row_config("paper")
    assert [(v.name, v.method) for v in base.variants] == [("model", "baseline")]
    assert [(v.name, v.method) for v in paper.variants] == [("model", "gfsr")]
    assert paper.variants[0].options["weight"] == 1.0
    assert base.benchmark == paper.benchmark and base.train == paper.train
    assert row_config("conv2").model.target_layer == "conv2_block3_out"
    assert row_config("paper@128px").benchmark.image_size == 128
    assert all(row_config(name) for name in ROWS)


def test_goals_against_hand_made_rows():
    base = {"decor_accuracy": 0.70, "corr_accuracy": 0.93, "within_class_marker_auc": 0.96,
            "marker_to_lesion_ratio": 1.2}
    good = {"decor_accuracy": 0.81, "corr_accuracy": 0.90, "within_class_marker_auc": 0.64,
            "marker_to_lesion_ratio": 0.29}
    assert all(goals_met(good, base, SHORTCUT_ISSUE_GOALS).values())
    # the guided default's goals are tighter: AUC <= 0.60, ratio <= 0.15 x, corr cost <= 0.02
    assert goals_met(good, base, GOALS) == {"marker_auc": False, "marker_ratio": False,
                                            "accuracy_gain": True, "no_accuracy_cost": False}
    better = dict(good, within_class_marker_auc=0.60, marker_to_lesion_ratio=0.18,
                  corr_accuracy=0.91)
    assert all(goals_met(better, base, GOALS).values())
    # a timid model: small logits everywhere, but the output still sorts by the marker
    timid = dict(good, within_class_marker_auc=0.9, marker_to_lesion_ratio=0.31)
    g = goals_met(timid, base)
    assert not g["marker_auc"] and not g["marker_ratio"] and g["accuracy_gain"]
    # a figure the report lacks meets nothing
    assert not goals_met({"decor_accuracy": 0.9, "corr_accuracy": 0.9}, base)["marker_auc"]


def test_gap_closed_against_the_control():
    base = {"twin_accuracy": 0.80, "marker_effect": 6.0}
    control = {"twin_accuracy": 0.90, "marker_effect": 0.0}
    row = {"twin_accuracy": 0.85, "marker_effect": 1.5}
    assert gap_closed(row, base, control, "twin_accuracy") == pytest.approx(0.5)
    assert gap_closed(row, base, control, "marker_effect") == pytest.approx(0.75)
    assert math.isnan(gap_closed(row, base, base, "marker_effect"))


def test_smoke_ablation_writes_table_and_resumes(tmp_path):
    out = run_ablation(["ext-input-grad"], out_dir=tmp_path, smoke=True, name="abl", verbose=0)
    names = [r["row"] for r in out["results"]]
    assert names == ["baseline", "ext-input-grad"]  # the setting's baseline always runs
    root = tmp_path / "abl"
    for f in ("results.json", "results.md", "results.png"):
        assert (root / f).exists()
    assert json.loads((root / "results.json").read_text())[1]["relevance"]["input_gradient_weight"] > 0
    assert "| ext-input-grad |" in out["markdown"]
    again = run_ablation(["ext-input-grad"], out_dir=tmp_path, smoke=True, name="abl", verbose=0)
    # finished rows are read back, not retrained (compared as JSON: NaN != NaN)
    assert json.dumps(again["results"]) == json.dumps(out["results"])
    # the row's folder holds its model card, not its checkpoints (deleted when it finished)
    assert (root / "ext-input-grad" / "model" / "best.json").exists()
    assert not (root / "ext-input-grad" / "model" / "checkpoints").exists()
    with pytest.raises(ValueError, match=r"unknown row\(s\)"):
        run_ablation(["nope"], out_dir=tmp_path, smoke=True)


def _result(name, setting, role, **figures):
    base = {"row": name, "setting": setting, "role": role,
            "relevance": None if role != "row" else {}, "corr_accuracy": 0.9,
            "decor_accuracy": 0.7, "within_class_marker_auc": 0.95,
            "marker_to_lesion_ratio": 1.0, "twin_accuracy": 0.8, "marker_effect": 6.0,
            "target_layer": "conv3_block4_out", "train_seconds": 1.0}
    return {**base, **figures}


def test_markdown_table_marks_goals_and_the_gap_closed():
    results = [_result("baseline", "s", "baseline"),
               _result("control", "s", "control", twin_accuracy=0.9, marker_effect=0.0),
               _result("x", "s", "row", decor_accuracy=0.85, within_class_marker_auc=0.6,
                       marker_to_lesion_ratio=0.2, twin_accuracy=0.85, marker_effect=3.0)]
    table = markdown_table(results)
    row = [line for line in table.splitlines() if line.startswith("| x |")][0]
    assert "4/4" in row and "| 0.500 | 0.500 |" in row   # half the gap, on both figures
    assert "–" in table                                   # figures a result lacks


def test_replicate_table_pairs_each_seed_with_its_own_baseline():
    results = [_result("baseline@c16", "c16", "baseline"),
               _result("b@c16", "c16", "row", decor_accuracy=0.85, within_class_marker_auc=0.6,
                       marker_to_lesion_ratio=0.2),
               _result("baseline@c16-seed1", "c16-seed1", "baseline", decor_accuracy=0.75),
               _result("b@c16-seed1", "c16-seed1", "row", decor_accuracy=0.80)]
    table = replicate_table(results)
    assert "| b (c16) | 2 | 0.600 (0.950), 0.950 (0.950) |" in table
    assert table.strip().endswith("| 1/2 | +0.100 |")


@pytest.mark.slow  # ~11 s; the smoke ablation's table-and-resume test stays in the suite
def test_causal_smoke_rows_with_a_control_and_an_extension(tmp_path):
    out = run_ablation(["control@c16", "ext-b-warmup@c16"], out_dir=tmp_path, smoke=True,
                       name="causal", verbose=0)
    roles = {r["row"]: r["role"] for r in out["results"]}
    assert roles == {"baseline@c16": "baseline", "control@c16": "control",
                     "ext-b-warmup@c16": "row"}
    # the control trains without the shortcut; the rows select the last epoch's model
    assert row_config("control@c16").benchmark.marker_rate_normal == 0.5
    assert row_config("oracle@c16").benchmark.marker_rate_pneumonia == 0.0
    assert row_config("ext-b-warmup@c16", smoke=True).train.monitor == "last"
    for r in out["results"]:
        assert 0 <= r["within_class_marker_auc"] <= 1 and r["twin_accuracy"] >= 0
    assert "gap closed" in out["markdown"]
