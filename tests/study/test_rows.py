"""The one resumable row runner every multi-row study uses (gfsr_tf.study.rows)."""
import json
import math

import pytest

from gfsr_tf.cli.common import select_rows
from gfsr_tf.study.rows import row_key, run_rows, write_results


def test_rows_are_computed_once_and_read_back_on_a_rerun(tmp_path):
    calls = []

    def compute(value):
        def run(run_dir):
            calls.append(run_dir.name)
            run_dir.mkdir(parents=True, exist_ok=True)
            return {"value": value, "nan": float("nan")}
        return run

    work = [(row_key("a", 0), compute(1.5)), (row_key("b", 0), compute(2.5))]
    first = run_rows(tmp_path, work, verbose=0)
    assert calls == ["a@seed0", "b@seed0"]
    assert [r["value"] for r in first] == [1.5, 2.5] and first[0]["nan"] is None
    again = run_rows(tmp_path, work + [(row_key("a", 1), compute(3.5))], verbose=0)
    assert calls == ["a@seed0", "b@seed0", "a@seed1"]          # only the new row ran
    assert again[:2] == first and again[2]["value"] == 3.5
    write_results(tmp_path, again, "| table |")
    assert json.loads((tmp_path / "results.json").read_text())[2]["value"] == 3.5
    assert (tmp_path / "results.md").read_text() == "| table |\n"


def test_an_interrupted_row_leaves_no_result_and_runs_again(tmp_path):
    def fails(run_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_rows(tmp_path, [("x", fails)], verbose=0)
    assert not (tmp_path / "x" / "result.json").exists()
    assert run_rows(tmp_path, [("x", lambda d: {"ok": math.pi})], verbose=0) == [{"ok": math.pi}]


def test_row_selection_names_unknown_rows():
    assert select_rows(["a", "b"], None) == ["a", "b"]
    assert select_rows(["a", "b"], "b", seeds=[0, 2]) == [row_key("b", 0), row_key("b", 2)]
    with pytest.raises(ValueError, match="unknown row.*zz.*choose from a, b"):
        select_rows(["a", "b"], "a,zz")
