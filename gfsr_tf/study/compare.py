"""The methods side by side (issue "The methods users weigh against GFSR"), from finished run
folders alone: one row per (model, seed) with the causal study's columns, each model's
annotation / group-label budget and its step cost against the baseline's in the same run, then
per model the mean over seeds with a 95% t interval, a markdown table and a figure.
`experiments/compare_methods.py` runs the seeds and calls `write_comparison`."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..methods.gfsr.describe import summarise, verdict
from .rows import write_results

# (key, header, format) of the per-model table; keys come from describe.summarise, the
# verdict and this module
COLUMNS = (("within_class_marker_auc", "marker AUC (within class)", ".3f"),
           ("marker_to_lesion_ratio", "marker / lesion", ".3f"),
           ("marker_effect_removal", "ATE of removal", "+.3f"),
           ("twin_accuracy", "twin accuracy", ".3f"),
           ("decor_accuracy", "decor acc", ".3f"), ("decor_auc", "decor AUC", ".3f"),
           ("corr_accuracy", "corr acc", ".3f"), ("corr_auc", "corr AUC", ".3f"),
           ("lung_hit_rate_all", "lung hit (all)", ".3f"),
           ("cam_marker_mass", "CAM mass on marker", ".3f"),
           ("cam_fooling_rate", "CAM-fooling", ".3f"),
           ("deletion_auc", "deletion AUC", ".3f"), ("insertion_auc", "insertion AUC", ".3f"),
           ("train_seconds", "training s", ".0f"), ("step_cost", "epoch cost × baseline", ".2f"))


def budget(report: dict, model: str) -> dict:
    """How many images a model needs human input for: relevance masks (a mask-guided method:
    every training image, or the annotated ones when the masks are propagated from a few
    annotations) and group labels (class x marker status: Group DRO on every training image,
    DFR on the validation images it uses; JTT and the rest none)."""
    training = report[model]["training"]
    n_train = report["data"]["train"]["n"]
    guidance = training.get("guidance")
    masks = 0
    if guidance == "annotations":
        masks = len((report.get("masks") or {}).get("annotated_images", []))
    elif guidance:
        masks = n_train
    groups = 0
    if training.get("method") == "group_dro":
        groups = n_train
    elif training.get("dfr"):
        groups = int(training["dfr"].get("group_labels_used", 0))
    return {"mask_images": masks, "group_labels": groups}


def _own_epoch_seconds(training: dict) -> list[float]:
    """Seconds of the epochs a model trained itself (not those shared from the baseline), plus
    a last stage's epochs (JTT's final training)."""
    own = [h["seconds"] for h in training["history"] if not h.get("shared_from")]
    own += [h["seconds"] for h in training.get("jtt", {}).get("final_history", [])]
    return own


def comparison_rows(reports: list[dict]) -> list[dict]:
    """One row per (model, seed) of every benchmark run (a run without the benchmark's twins has
    no verdict and is left out)."""
    rows = []
    for report in reports:
        seed = report["config"]["train"]["seed"]
        judged = {r["model"]: r for r in verdict(report)}
        if "baseline" not in judged:
            continue
        base = _own_epoch_seconds(report["baseline"]["training"])
        base_epoch = float(np.mean(base)) if base else math.nan
        for model, r in judged.items():
            training = report[model]["training"]
            audit = report[model].get("audit", {})
            own = _own_epoch_seconds(training)
            rows.append({
                "model": model, "method": training.get("method", model), "seed": seed,
                **{k: v for k, v in summarise(report[model]).items()
                   if isinstance(v, (int, float, str)) or v is None},
                # the audit's estimate (its bootstrap interval stays in report.json)
                "cam_marker_mass": (audit.get("cam_marker_mass") or {}).get("estimate",
                                                                            math.nan),
                "step_cost": (float(np.mean(own)) / base_epoch) if own else math.nan,
                "met": r.get("met", {}), **budget(report, model)})
    return rows


def _mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval (NaN with fewer than 2 values). Over seeds,
    not images: with 3 values the percentile bootstrap of `metrics.mean_ci` has nothing to
    resample."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], float)
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) < 2:
        return float(v.mean()), math.nan
    from scipy import stats
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1)
                                  / math.sqrt(len(v)))


def summary_by_model(rows: list[dict]) -> list[dict]:
    """Per model (in the runs' order): seeds, mean and 95% half-width of every column, budget,
    and on how many seeds each goal of the verdict holds."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        entry = {"model": model, "method": mine[0]["method"], "seeds": [r["seed"] for r in mine],
                 "mask_images": mine[0]["mask_images"], "group_labels": mine[0]["group_labels"]}
        for key, _, _ in COLUMNS:
            entry[key], entry[key + "_ci"] = _mean_ci(r.get(key, math.nan) for r in mine)
        goals = {}
        for r in mine:
            for goal, ok in r["met"].items():
                goals.setdefault(goal, []).append(ok)
        entry["goals_met"] = {g: f"{sum(bool(v) for v in oks)}/{len(oks)}"
                              for g, oks in goals.items()}
        out.append(entry)
    return out


def _cell(value, ci, fmt) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = format(value, fmt)
    return text if ci is None or math.isnan(ci) else f"{text} ± {format(ci, fmt.lstrip('+'))}"


def comparison_markdown(summary: list[dict], title: str) -> str:
    lines = [f"# {title}", "",
             "Mean over seeds ± the half-width of its 95% t interval (no interval with one "
             "seed). Decorrelated test split unless named; budget = training images that need a "
             "relevance mask / a group label; epoch cost = the mean seconds of the epochs a "
             "model trains itself (not those shared from the baseline) over the baseline's, "
             "in the same runs; goals = on how many seeds each goal of the guided default "
             "holds (decision / anatomy / faithful / accuracy).", "",
             "| model | seeds | masks | group labels | "
             + " | ".join(h for _, h, _ in COLUMNS) + " | goals met |",
             "|" + "---|" * (5 + len(COLUMNS))]
    for s in summary:
        goals = " / ".join(f"{g} {v}" for g, v in s["goals_met"].items()) or "–"
        lines.append(f"| {s['model']} | {','.join(map(str, s['seeds']))} | {s['mask_images']} | "
                     f"{s['group_labels']} | "
                     + " | ".join(_cell(s[k], s[k + '_ci'], f) for k, _, f in COLUMNS)
                     + f" | {goals} |")
    return "\n".join(lines) + "\n"


def comparison_figure(summary: list[dict], path, title: str) -> None:
    """Reliance (within-class marker AUC) against decorrelated accuracy, per model, with the
    95% intervals over seeds as error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..report.basics import wrap_title
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for s in summary:
        x, y = s["within_class_marker_auc"], s["decor_accuracy"]
        if math.isnan(x) or math.isnan(y):
            continue
        xerr = None if math.isnan(s["within_class_marker_auc_ci"]) else \
            s["within_class_marker_auc_ci"]
        yerr = None if math.isnan(s["decor_accuracy_ci"]) else s["decor_accuracy_ci"]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3)
        ax.annotate(s["model"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("within-class marker AUC (0.5 = the marker is ignored)")
    ax.set_ylabel("decorrelated test accuracy")
    ax.set_title(wrap_title(title, 60), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_comparison(reports: list[dict], root, title: str) -> list[dict]:
    """results.json (the per-seed rows and the per-model summary), results.md and results.png
    in `root`; returns the summary."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(reports)
    summary = summary_by_model(rows)
    write_results(root, {"rows": rows, "by_model": summary},
                  comparison_markdown(summary, title))
    comparison_figure(summary, root / "results.png", title)
    return summary
