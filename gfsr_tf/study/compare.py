"""The methods side by side (issue "The methods users weigh against GFSR"), from finished run
folders alone: one row per (model, seed) with the causal study's columns, each model's
annotation / group-label budget and its step cost against the baseline's in the same run, then
per model the mean over seeds with a 95% t interval, a markdown table and a figure. A run
trained with tuning (`presets.compare_methods.tuned`: variants `<method>@<option>=<value>`)
contributes, per method, the setting with the highest worst-group validation accuracy, and the
tuning table lists every setting's. `experiments/compare_methods.py` runs the seeds and calls
`write_comparison`."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..methods.gfsr.describe import summarise, verdict
from ..presets.compare_methods import SETTING, setting_of
from .rows import write_results

# (key, header, format) of the per-model table; keys come from describe.summarise, the
# verdict and this module
COLUMNS = (("val_worst_group_accuracy", "val worst-group acc", ".3f"),
           ("within_class_marker_auc", "marker AUC (within class)", ".3f"),
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


def finished_report(config, out_dir) -> dict | None:
    """The report of a seed's run folder that has already run exactly this study (the same
    configuration, every variant in it), or None. Rerunning run_study on a finished folder
    re-evaluates every model (about 1.5 min each at 64 px on 2 cores: a quarter of an hour for
    the comparison's eleven models), so a resumed comparison reads finished seeds back."""
    root = Path(out_dir) / config.name
    try:
        report = json.loads((root / "report.json").read_text())
    except (OSError, ValueError):
        return None
    # the configuration as run_study records it (JSON: tuples become lists)
    if report.get("config") != json.loads(json.dumps(config.to_dict())):
        return None
    if not all("training" in report.get(v.name, {}) for v in config.variants):
        return None
    return report


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


def _worst_group(report: dict, variant: str) -> float:
    value = report[variant].get("validation", {}).get("worst_group_accuracy")
    return math.nan if value is None else float(value)


def _mean_group(report: dict, variant: str) -> float:
    groups = report[variant].get("validation", {}).get("group_accuracy") or {}
    return float(np.mean(list(groups.values()))) if groups else math.nan


def tuning_choices(report: dict) -> dict[str, dict]:
    """Per model (a variant's name before `@`): the settings it trained with their worst-group
    validation accuracies, and the chosen variant - the highest worst-group accuracy, ties to
    the higher mean group accuracy, then to the earlier setting (NaN ranks last). An untuned
    variant is its own only setting."""
    by_model: dict[str, list[str]] = {}
    for v in report["config"]["variants"]:
        if v["name"] in report:
            by_model.setdefault(v["name"].split(SETTING, 1)[0], []).append(v["name"])

    def rank(variant):
        w, m = _worst_group(report, variant), _mean_group(report, variant)
        return (-math.inf if math.isnan(w) else w, -math.inf if math.isnan(m) else m)
    out = {}
    for model, variants in by_model.items():
        chosen = max(variants, key=rank)   # max keeps the first of equals
        out[model] = {"chosen": chosen, "setting": setting_of(chosen),
                      "val_worst_group_accuracy": {setting_of(v): _worst_group(report, v)
                                                   for v in variants}}
    return out


def comparison_rows(reports: list[dict]) -> list[dict]:
    """One row per (model, seed) of every benchmark run - a tuned model's chosen setting - (a
    run without the benchmark's twins has no verdict and is left out)."""
    rows = []
    for report in reports:
        seed = report["config"]["train"]["seed"]
        judged = {r["model"]: r for r in verdict(report)}
        if "baseline" not in judged:
            continue
        base = _own_epoch_seconds(report["baseline"]["training"])
        base_epoch = float(np.mean(base)) if base else math.nan
        for model, choice in tuning_choices(report).items():
            variant = choice["chosen"]
            r = judged[variant]
            training = report[variant]["training"]
            audit = report[variant].get("audit", {})
            own = _own_epoch_seconds(training)
            rows.append({
                "model": model, "method": training.get("method", model), "seed": seed,
                "variant": variant, "setting": choice["setting"],
                "val_worst_group_accuracy": _worst_group(report, variant),
                "tuning": choice["val_worst_group_accuracy"],
                **{k: v for k, v in summarise(report[variant]).items()
                   if isinstance(v, (int, float, str)) or v is None},
                # the audit's estimate (its bootstrap interval stays in report.json)
                "cam_marker_mass": (audit.get("cam_marker_mass") or {}).get("estimate",
                                                                            math.nan),
                "step_cost": (float(np.mean(own)) / base_epoch) if own else math.nan,
                "met": r.get("met", {}), **budget(report, variant)})
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
                 "settings": [r.get("setting", "default") for r in mine],
                 "mask_images": mine[0]["mask_images"], "group_labels": mine[0]["group_labels"]}
        for key, _, _ in COLUMNS:
            entry[key], entry[key + "_ci"] = _mean_ci(r.get(key, math.nan) for r in mine)
            entry[key + "_per_seed"] = [r.get(key, math.nan) for r in mine]
        goals = {}
        for r in mine:
            for goal, ok in r["met"].items():
                goals.setdefault(goal, []).append(ok)
        # a goal the verdict could not judge (None: the map goal on real images, which have no
        # lung masks) is left out of the count, "–" when no seed could judge it
        judged = {g: [ok for ok in oks if ok is not None] for g, oks in goals.items()}
        entry["goals_met"] = {g: f"{sum(map(bool, oks))}/{len(oks)}" if oks else "–"
                              for g, oks in judged.items()}
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
             "holds (decision / anatomy / faithful / accuracy); val worst-group acc = the "
             "tuning criterion (DFR's includes the validation images it retrained its last "
             "layer on).", "",
             "| model | seeds | setting per seed | masks | group labels | "
             + " | ".join(h for _, h, _ in COLUMNS) + " | goals met |",
             "|" + "---|" * (6 + len(COLUMNS))]
    for s in summary:
        goals = " / ".join(f"{g} {v}" for g, v in s["goals_met"].items()) or "–"
        lines.append(f"| {s['model']} | {','.join(map(str, s['seeds']))} | "
                     f"{', '.join(s['settings'])} | {s['mask_images']} | {s['group_labels']} | "
                     + " | ".join(_cell(s[k], s[k + '_ci'], f) for k, _, f in COLUMNS)
                     + f" | {goals} |")
    return "\n".join(lines) + "\n"


def tuning_markdown(rows: list[dict]) -> str:
    """Every tried setting's worst-group validation accuracy per (model, seed), the chosen one
    in bold; '' when no model was tuned."""
    tuned = [r for r in rows if len(r.get("tuning", {})) > 1]
    if not tuned:
        return ""
    lines = ["", "## Tuning (worst-group accuracy on the validation split, class x marker)", "",
             "Each method trained every setting below on the same data, seed and warm-up; the "
             "table above keeps, per seed, the setting with the highest worst-group validation "
             "accuracy (ties: the higher mean group accuracy, then the earlier setting). Test "
             "data never enter the choice.", "", "| model | seed | settings tried | chosen |",
             "|---|---|---|---|"]
    for r in tuned:
        tried = ", ".join((f"**{k}: {_cell(v, None, '.3f')}**" if k == r["setting"] else
                           f"{k}: {_cell(v, None, '.3f')}") for k, v in r["tuning"].items())
        lines.append(f"| {r['model']} | {r['seed']} | {tried} | {r['setting']} |")
    return "\n".join(lines) + "\n"


def error_bar(mean: float, ci: float, per_seed: list, bounds=(0.0, 1.0)) -> tuple | None:
    """(below, above) the mean for a figure's error bar: the 95% t interval with three seeds or
    more, the range with two (a t interval over two values spans ±12.7 standard errors: wider
    than any AUC), nothing with one; clipped to `bounds` (an AUC or accuracy lies in [0, 1])."""
    values = [v for v in per_seed if v is not None and not math.isnan(v)]
    if math.isnan(mean) or len(values) < 2:
        return None
    if len(values) == 2:
        low, high = min(values), max(values)
    else:
        low, high = mean - ci, mean + ci
    low, high = max(low, bounds[0]), min(high, bounds[1])
    return max(mean - low, 0.0), max(high - mean, 0.0)


def comparison_figure(summary: list[dict], path, title: str) -> None:
    """Reliance (within-class marker AUC) against decorrelated accuracy at 0.5 and against the
    threshold-free decorrelated AUC, per model (an accuracy of 0.5 with a high AUC is a model
    whose outputs sit on one side of 0.5), with `error_bar`s over the seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..report.basics import wrap_title
    seeds = max((len(s["seeds"]) for s in summary), default=0)
    bars = {1: "", 2: " (bars: range over the 2 seeds)"}.get(
        seeds, " (bars: 95% t intervals over the seeds)")
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8), sharex=True)
    # one colour and marker per model, named in one legend: models with similar figures sit on
    # top of each other, and labels beside the points printed over each other (11 models)
    colours, markers = plt.get_cmap("tab10").colors + ("black", "0.55"), "osD^vP*Xh<>p"
    for ax, key, label in ((axes[0], "decor_accuracy", "decorrelated test accuracy (at 0.5)"),
                           (axes[1], "decor_auc", "decorrelated test AUC")):
        for i, s in enumerate(summary):
            x, y = s["within_class_marker_auc"], s[key]
            if math.isnan(x) or math.isnan(y):
                continue
            xerr = error_bar(x, s["within_class_marker_auc_ci"],
                             s.get("within_class_marker_auc_per_seed", []))
            yerr = error_bar(y, s[key + "_ci"], s.get(key + "_per_seed", []))
            ax.errorbar(x, y, xerr=None if xerr is None else [[xerr[0]], [xerr[1]]],
                        yerr=None if yerr is None else [[yerr[0]], [yerr[1]]],
                        fmt=markers[i % len(markers)], color=colours[i % len(colours)],
                        markersize=7, capsize=3, alpha=0.85, label=s["model"])
        ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlim(min(0.4, ax.get_xlim()[0]), 1.02)
        ax.set_ylim(min(0.4, ax.get_ylim()[0]), 1.02)
        ax.set_xlabel("within-class marker AUC (0.5 = the marker is ignored)")
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(wrap_title(title + bars, 110), fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.87, 1))
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
                  comparison_markdown(summary, title) + tuning_markdown(rows))
    comparison_figure(summary, root / "results.png", title)
    return summary
