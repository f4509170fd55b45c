"""A study of many one-variant rows, each beside its setting's baseline (the shortcut ablation:
`preset.py` beside this module defines the rows). Every row is resumable (`study.rows`): a
finished row is read back from <root>/<row>/result.json, an interrupted one resumes from its
last checkpoint."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ...config import StudyConfig
from .describe import SHORTCUT_ISSUE_GOALS, gap_closed, goals_met, summarise
from ...study.rows import run_rows as resumable_rows
from ...study.rows import write_results
from ...study.run import run_study


@dataclass
class AblationRow:
    config: StudyConfig          # one variant; a "baseline"-method variant marks the baseline
    setting: str                 # rows of one setting share data, seed and initial weights
    note: str = ""
    role: str = "row"            # baseline | control | oracle | row (preset.Row)


def row_result(name: str, row: AblationRow, root: Path, verbose: int = 1) -> dict:
    """Train and evaluate one row (its study writes into <root>/<name>/)."""
    report = run_study(row.config, root, verbose=verbose, render=False)
    (variant,) = row.config.variants
    section = report[variant.name]
    result = {"row": name, "setting": row.setting, "note": row.note, "role": row.role,
              "relevance": section["training"]["relevance"]
              if variant.method != "baseline" else None,
              "distribute": section["training"]["distribute"],
              "warnings": report["warnings"], **summarise(section)}
    return result


def role(result: dict) -> str:
    """A result's role; results written before roles existed: a plain classifier is the
    baseline unless its row is the no-shortcut control."""
    if "role" in result:
        return result["role"]
    if result["relevance"] is not None:
        return "row"
    return "control" if result["row"].startswith("control") else "baseline"


def _of_role(results: list[dict], setting: str, wanted: str) -> dict | None:
    for r in results:
        if r["setting"] == setting and role(r) == wanted:
            return r
    return None


def _baseline_of(results: list[dict], setting: str) -> dict | None:
    return _of_role(results, setting, "baseline")


# (key, header): the causal figures first (decorrelated split; docs/studies/shortcuts.md "Does guided focus remove
# shortcuts?"), then accuracy, Grad-CAM faithfulness and cost
COLUMNS = [("within_class_marker_auc", "marker AUC within class"),
           ("marker_to_lesion_ratio", "marker / lesion effect"),
           ("marker_effect_removal", "ATE of removing the marker (logits)"),
           ("twin_accuracy", "twin acc"), ("decor_accuracy", "decor acc"),
           ("decor_auc", "decor AUC"), ("corr_accuracy", "corr acc"),
           ("deletion_auc", "deletion AUC"), ("insertion_auc", "insertion AUC"),
           ("lesion_hit_rate", "lesion hit"), ("train_seconds", "train s")]
# (row - baseline) / (control - baseline); undefined ("–") when the two coincide. A baseline
# trained long enough can be *more* competent on the twins than the control (the marker is a
# curriculum), which makes the twin-accuracy fraction meaningless: read it with its sign.
GAP_KEYS = (("twin_accuracy", "gap closed: twin acc"),
            ("marker_effect", "gap closed: marker effect"),
            ("decor_accuracy", "gap closed: decor acc"))


def _cell(value, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.0f}" if key == "train_seconds" else f"{value:.3f}"


def markdown_table(results: list[dict]) -> str:
    head = ("| row | role | setting | layer | " + " | ".join(c[1] for c in COLUMNS) + " | "
            + " | ".join(g[1] for g in GAP_KEYS) + " | goals met |")
    lines = [head, "|" + "---|" * (len(COLUMNS) + len(GAP_KEYS) + 5)]
    for r in results:
        base = _baseline_of(results, r["setting"])
        control = _of_role(results, r["setting"], "control")
        met, gaps = "", ["–"] * len(GAP_KEYS)
        if base is not None and r is not base:
            if role(r) == "row":
                g = goals_met(r, base, SHORTCUT_ISSUE_GOALS)
                met = f"{sum(g.values())}/4 " + ",".join(k for k, v in g.items() if v)
            if control is not None:
                gaps = [_cell(gap_closed(r, base, control, k)) for k, _ in GAP_KEYS]
        cells = [_cell(r.get(k, math.nan), k) for k, _ in COLUMNS]
        layer = (r.get("target_layer") or "").split("_")[0]
        lines.append(f"| {r['row']} | {role(r)} | {r['setting']} | {layer} | "
                     + " | ".join(cells + gaps) + f" | {met} |")
    return "\n".join(lines)


def replicate_table(results: list[dict]) -> str:
    """Rows repeated over seeds (`name`, `name@seedN`, `name@c16-seedN`): per seed, the row's
    causal figures beside that seed's baseline, and how many seeds meet each goal."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        if role(r) != "row":
            continue
        config = r["row"].partition("@")[0]
        family = re.sub(r"-seed\d+$", "", r["setting"])  # the setting without its seed
        groups.setdefault(f"{config} ({family})", []).append(r)
    lines = ["| config | seeds | marker AUC per seed (baseline) | marker/lesion ratio per seed "
             "(baseline) | Δ decor acc per seed | Δ corr acc per seed | seeds meeting all 4 "
             "goals | mean Δ decor acc |", "|---|---|---|---|---|---|---|---|"]
    for name, rows in groups.items():
        if len(rows) < 2:
            continue
        cells = {"auc": [], "ratio": [], "acc": [], "corr": []}
        gains, all_met = [], 0
        for r in rows:
            base = _baseline_of(results, r["setting"])
            if base is None:
                continue
            cells["auc"].append(f"{_cell(r.get('within_class_marker_auc'))} "
                                f"({_cell(base.get('within_class_marker_auc'))})")
            cells["ratio"].append(f"{_cell(r.get('marker_to_lesion_ratio'))} "
                                  f"({_cell(base.get('marker_to_lesion_ratio'))})")
            gains.append(r["decor_accuracy"] - base["decor_accuracy"])
            cells["acc"].append(f"{gains[-1]:+.3f}")
            cells["corr"].append(f"{r['corr_accuracy'] - base['corr_accuracy']:+.3f}")
            all_met += all(goals_met(r, base, SHORTCUT_ISSUE_GOALS).values())
        n = len(gains)
        if n < 2:
            continue
        lines.append(f"| {name} | {n} | " + " | ".join(
            ", ".join(cells[k]) for k in ("auc", "ratio", "acc", "corr"))
            + f" | {all_met}/{n} | {sum(gains) / n:+.3f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    names = [r["row"] for r in results]
    keys = [("within_class_marker_auc", "within-class marker AUC (0.5 = ignores it)"),
            ("twin_accuracy", "accuracy on marker-free twins"),
            ("decor_accuracy", "decorrelated accuracy"), ("corr_accuracy", "correlated accuracy")]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names) + 2), 4))
    for i, (k, label) in enumerate(keys):
        ax.bar(x + (i - 1.5) * 0.2, [r.get(k, np.nan) for r in results], 0.2, label=label)
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
    work = [(row_name, lambda _, n=row_name, r=row: row_result(n, r, root, verbose))
            for row_name, row in rows.items()]
    results = resumable_rows(root, work, label="ablation", verbose=verbose)
    table = markdown_table(results)
    replicates = replicate_table(results)
    if replicates:
        table += ("\n\nReplicates over seeds (data and initialisation both change with the "
                  "seed):\n\n" + replicates)
    write_results(root, results, table)
    plot(results, root / "results.png")
    return {"results": results, "markdown": table}
