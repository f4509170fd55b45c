"""A study of many one-variant rows, each beside its setting's baseline (the shortcut ablation:
`presets/ablation.py` defines the rows). Every row is resumable: a finished row is read back
from <root>/<row>/result.json, an interrupted one resumes from its last checkpoint."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import StudyConfig
from ..methods.gfsr.describe import baseline_hit_rate, goals_met, summarise
from .run import run_study


@dataclass
class AblationRow:
    config: StudyConfig          # one variant; a "baseline"-method variant marks the baseline
    setting: str                 # rows of one setting share data, seed and initial weights
    note: str = ""


def run_row(name: str, row: AblationRow, root: Path, verbose: int = 1) -> dict:
    result_path = root / name / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    report = run_study(row.config, root, verbose=verbose, render=False)
    (variant,) = row.config.variants
    section = report[variant.name]
    result = {"row": name, "setting": row.setting, "note": row.note,
              "relevance": section["training"]["relevance"]
              if variant.method != "baseline" else None,
              "warnings": report["warnings"], **summarise(section)}
    result_path.write_text(json.dumps(result, indent=2))
    return result


def _baseline_of(results: list[dict], setting: str) -> dict | None:
    for r in results:
        if r["setting"] == setting and r["relevance"] is None:
            return r
    return None


COLUMNS = [("corr_accuracy", "corr acc"), ("decor_accuracy", "decor acc"), ("decor_auc", "decor AUC"),
           ("flip_marker_removed", "flip (removed)"), ("flip_marker_removed_marked", "flip among marked"),
           ("flip_marker_cropped", "flip (cropped)"), ("lesion_hit_rate", "lesion hit"),
           ("baseline_lesion_hit", "baseline lesion hit, same layer"),
           ("lung_hit_rate", "lung hit"), ("marker_hit_rate", "marker hit"),
           ("train_seconds", "train s")]


def markdown_table(results: list[dict]) -> str:
    head = "| row | setting | layer | " + " | ".join(c[1] for c in COLUMNS) + " | goals met |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for r in results:
        base = _baseline_of(results, r["setting"])
        r = dict(r, baseline_lesion_hit=baseline_hit_rate(r, base) if base else math.nan)
        met = ""
        if r["relevance"] is not None and base is not None:
            g = goals_met(r, base)
            met = f"{sum(g.values())}/4 " + ",".join(k for k, v in g.items() if v)
        cells = [f"{r[k]:.0f}" if k == "train_seconds" else f"{r[k]:.3f}" for k, _ in COLUMNS]
        layer = (r.get("target_layer") or "").split("_")[0]
        lines.append(f"| {r['row']} | {r['setting']} | {layer} | " + " | ".join(cells) + f" | {met} |")
    return "\n".join(lines)


def replicate_table(results: list[dict]) -> str:
    """Rows repeated over seeds (`name`, `name@seedN`): per seed, the differences to that seed's
    baseline, and how many seeds meet each goal."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        if r["relevance"] is None:
            continue
        config = r["row"].partition("@")[0]
        family = re.sub(r"-seed\d+$", "", r["setting"])  # the setting without its seed
        groups.setdefault(f"{config} ({family})", []).append(r)
    lines = ["| config | seeds | Δ decor acc per seed | flip / baseline flip per seed | "
             "Δ lesion hit (same layer) per seed | Δ corr acc per seed | seeds meeting all 4 goals | "
             "mean Δ decor acc | mean flip / mean baseline flip |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in groups.items():
        if len(rows) < 2:
            continue
        cells = {"acc": [], "flip": [], "hit": [], "corr": []}
        sums = {"acc": 0.0, "flip": 0.0, "base_flip": 0.0}
        all_met = 0
        for r in rows:
            base = _baseline_of(results, r["setting"])
            if base is None:
                continue
            cells["acc"].append(f"{r['decor_accuracy'] - base['decor_accuracy']:+.3f}")
            cells["flip"].append(f"{r['flip_marker_removed'] / max(base['flip_marker_removed'], 1e-9):.2f}")
            cells["hit"].append(f"{r['lesion_hit_rate'] - baseline_hit_rate(r, base):+.3f}")
            cells["corr"].append(f"{r['corr_accuracy'] - base['corr_accuracy']:+.3f}")
            all_met += all(goals_met(r, base).values())
            sums["acc"] += r["decor_accuracy"] - base["decor_accuracy"]
            sums["flip"] += r["flip_marker_removed"]
            sums["base_flip"] += base["flip_marker_removed"]
        n = len(cells["acc"])
        lines.append(f"| {name} | {n} | " + " | ".join(
            ", ".join(cells[k]) for k in ("acc", "flip", "hit", "corr")) + f" | {all_met}/{n} | "
            f"{sums['acc'] / max(n, 1):+.3f} | {sums['flip'] / max(sums['base_flip'], 1e-9):.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    names = [r["row"] for r in results]
    keys = [("decor_accuracy", "decorrelated accuracy"), ("corr_accuracy", "correlated accuracy"),
            ("flip_marker_removed", "flip rate (marker removed)"), ("lesion_hit_rate", "lesion hit rate")]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 4))
    for i, (k, label) in enumerate(keys):
        ax.bar(x + (i - 1.5) * 0.2, [r[k] for r in results], 0.2, label=label)
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    ax.set_xticks(x, names, rotation=40, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Shortcut ablation on the embedded benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



def run_rows(rows: dict[str, AblationRow], out_dir="runs", name: str = "ablation",
             verbose: int = 1) -> dict:
    root = Path(out_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for i, (row_name, row) in enumerate(rows.items()):
        if verbose:
            print(f"[ablation {i + 1}/{len(rows)}] {row_name}")
        results.append(run_row(row_name, row, root, verbose))
    table = markdown_table(results)
    replicates = replicate_table(results)
    if replicates:
        table += ("\n\nReplicates over seeds (data and initialisation both change with the "
                  "seed):\n\n" + replicates)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    (root / "results.md").write_text(table + "\n")
    plot(results, root / "results.png")
    return {"results": results, "markdown": table}
