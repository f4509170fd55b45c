import json

import pytest

from gfsr_tf.methods.gfsr.describe import baseline_hit_rate, goals_met
from gfsr_tf.presets.ablation import ROWS, row_config, run_ablation
from gfsr_tf.study.ablation import markdown_table, replicate_table


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
    base = {"decor_accuracy": 0.70, "flip_marker_removed": 0.30, "lesion_hit_rate": 0.05,
            "corr_accuracy": 0.93}
    good = {"decor_accuracy": 0.81, "flip_marker_removed": 0.15, "lesion_hit_rate": 0.06,
            "corr_accuracy": 0.90}
    assert all(goals_met(good, base).values())
    broken = {"decor_accuracy": 0.5, "flip_marker_removed": 0.0, "lesion_hit_rate": 0.0,
              "corr_accuracy": 0.5}
    g = goals_met(broken, base)
    assert g["flip_halved"] and not g["accuracy_gain"] and not g["no_accuracy_cost"]
    # hit rates are compared at the row's layer
    base["localization_by_layer"] = {"conv2_block3_out": {"lesion_hit_rate": 0.5}}
    conv2 = dict(good, target_layer="conv2_block3_out")
    assert baseline_hit_rate(conv2, base) == 0.5 and not goals_met(conv2, base)["hit_rate_up"]
    assert baseline_hit_rate(good, base) == 0.05


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
    with pytest.raises(ValueError, match="unknown ablation rows"):
        run_ablation(["nope"], out_dir=tmp_path, smoke=True)


def test_markdown_table_marks_goals():
    row = {"row": "x", "setting": "64px", "relevance": {}, "corr_accuracy": 0.9,
           "decor_accuracy": 0.9, "decor_auc": 0.9, "flip_marker_removed": 0.0,
           "flip_marker_removed_marked": 0.0, "flip_marker_cropped": 0.0, "lesion_hit_rate": 0.5,
           "lung_hit_rate": 0.5, "marker_hit_rate": 0.0, "train_seconds": 1.0,
           "target_layer": "conv3_block4_out"}
    base = dict(row, row="baseline", relevance=None, decor_accuracy=0.6, flip_marker_removed=0.3,
                lesion_hit_rate=0.1)
    table = markdown_table([base, row])
    assert "4/4" in table


def test_replicate_table_pairs_each_seed_with_its_own_baseline():
    def row(name, setting, decor, flip, relevance=True):
        return {"row": name, "setting": setting, "relevance": {} if relevance else None,
                "decor_accuracy": decor, "flip_marker_removed": flip, "lesion_hit_rate": 0.1,
                "corr_accuracy": 0.9, "target_layer": "conv3_block4_out"}
    results = [row("baseline", "64px", 0.70, 0.30, False), row("conv2", "64px", 0.85, 0.10),
               row("baseline@seed1", "64px-seed1", 0.75, 0.20, False),
               row("conv2@seed1", "64px-seed1", 0.80, 0.15)]
    table = replicate_table(results)
    assert "| conv2 (64px) | 2 | +0.150, +0.050 | 0.33, 0.75 |" in table
    # lesion hit not above the baseline's on either seed; means: (0.15 + 0.05) / 2, 0.25 / 0.5
    assert table.strip().endswith("| 0/2 | +0.100 | 0.50 |")
