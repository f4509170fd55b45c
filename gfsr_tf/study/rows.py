"""One resumable row runner for every multi-row study (the causal ablation, the gaze U-Net model
sets, the gaze-intensity tables): rows are computed in order, each into `<root>/<key>/` with its
`result.json` written atomically when it finishes; a rerun reads finished rows back instead of
recomputing them (an unfinished row resumes from its own checkpoints, through the trainer). The
study then writes `results.json` and `results.md` beside the rows. Row keys are `<row>@seed<k>`
(`row_key`) unless a study names its rows itself.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from ..report.io import write_json


def row_key(row: str, seed: int) -> str:
    return f"{row}@seed{seed}"


def run_rows(root, rows: Iterable[tuple[str, Callable[[Path], dict]]], *, label: str = "row",
             verbose: int = 1) -> list[dict]:
    """rows: (key, compute) pairs in order; compute(run_dir) returns the row's result (a
    JSON-safe dict), computed only when `<root>/<key>/result.json` does not exist yet."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    results = []
    for i, (key, compute) in enumerate(rows):
        path = root / key / "result.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
            continue
        if verbose:
            print(f"[{label} {i + 1}/{len(rows)}] {key}")
        result = compute(root / key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result)
        results.append(json.loads(path.read_text()))   # as a rerun will read it
    return results


def write_results(root, results, table: str) -> None:
    """`results.json` (the rows' results) and `results.md` (the study's table) beside the rows."""
    root = Path(root)
    write_json(root / "results.json", results)
    (root / "results.md").write_text(table.rstrip("\n") + "\n")
