"""What a report says about a GFSR model: whether its configuration is the paper's, and the
shortcut goals against the study's baseline. Pure functions of report.json."""
from __future__ import annotations

import math

# The paper's GFSR configuration (Contreras & Bocklitz, chest X-ray): what "paper-faithful" means.
PAPER_GFSR = {"target_layer": "conv3_block4_out", "weight": 1.0, "alpha": 0.5, "beta": 1.0,
              "focal_gamma": 2.0, "second_order": True, "cam_class": "true", "warmup_epochs": 0,
              "ramp_epochs": 0,
              "cam_mode": "training", "cam_cells": "all"}
# Terms beyond the paper's loss (RelevanceConfig): option -> what the report calls it
EXTENSIONS = {"input_gradient_weight": "input-gradient penalty outside the mask",
              "counterfactual_rate": "counterfactual out-of-mask replacement (augmentation)",
              "consistency_weight": "logit consistency under counterfactual backgrounds",
              "outside_attribution_weight": "signed gradient x activation mass outside the mask"}

# Goals of the shortcut issue, on the benchmark's decorrelated test split, threshold-free where
# it matters: reliance on the marker measured causally and scale-free (the audit evaluator).
GOALS = {"marker_auc": 0.65, "ratio_factor": 0.25, "accuracy_gain": 0.10,
         "corr_accuracy_cost": 0.03}


def gfsr_configuration(options: dict, target_layer: str) -> str:
    """One line saying whether a GFSR model is paper-faithful, the paper's method with changed
    settings, or uses an extension beyond the paper. `options`: its RelevanceConfig as a dict."""
    current = {**options, "target_layer": target_layer}
    changed = [f"{k} {current[k]!r} (paper: {v!r})" for k, v in PAPER_GFSR.items()
               if current.get(k, v) != v]
    extensions = [f"{label} ({key.replace('_', ' ')} {options[key]})"
                  for key, label in EXTENSIONS.items() if options.get(key, 0) > 0]
    if extensions:
        return ("extension beyond the paper: " + "; ".join(extensions)
                + (f"; also {', '.join(changed)}" if changed else ""))
    if options.get("fused"):
        changed.append("fused first-order step" + (
            " (log-probability CAM on softmax heads)"
            if options.get("fused_cam") == "log_probability" else ""))
    if not changed:
        return "paper-faithful (the paper's relevance loss, weights, Grad-CAM layer and exact step)"
    return "the paper's method with changed settings: " + ", ".join(changed)


def _estimate(value):
    return value.get("estimate", math.nan) if isinstance(value, dict) else value


def summarise(section: dict) -> dict:
    """The numbers a benchmark model is judged by (decorrelated split unless named otherwise):
    the shortcut audit's causal figures, accuracy, flip rates, Grad-CAM localization at the
    model's target layer (plus every reference layer). Figures a report lacks are NaN."""
    m = section["metrics"]
    rob, loc = section["robustness"], section["localization"]
    audit = section.get("audit", {})
    nan = math.nan
    return {
        "corr_accuracy": m["test_correlated"]["accuracy"], "corr_auc": m["test_correlated"]["auc"],
        "decor_accuracy": m["test_decorrelated"]["accuracy"],
        "decor_auc": m["test_decorrelated"]["auc"],
        "within_class_marker_auc": audit.get("within_class_marker_auc", {}).get("mean", nan),
        "marker_to_lesion_ratio": audit.get("marker_to_lesion_ratio", nan),
        "marker_effect": audit.get("marker_effect", nan),
        "lesion_effect": audit.get("lesion_effect", nan),
        "marker_effect_removal": _estimate(audit.get("marker_effect_removal", nan)),
        "marker_effect_addition": _estimate(audit.get("marker_effect_addition", nan)),
        "twin_accuracy": audit.get("twin_accuracy", nan),
        "marker_added_accuracy": audit.get("marker_added_accuracy", nan),
        "cam_fooling_rate": audit.get("cam_fooling_rate", nan),
        "deletion_auc": audit.get("deletion_auc", nan),
        "insertion_auc": audit.get("insertion_auc", nan),
        "flip_marker_removed": rob["marker_removed"]["flip_rate"],
        "flip_marker_removed_marked": rob["marker_removed"]["among_marked"]["flip_rate"],
        "flip_marker_cropped": rob["marker_cropped"]["flip_rate"],
        "lesion_hit_rate": loc["lesion_hit_rate"], "lung_hit_rate": loc["lung_hit_rate"],
        "marker_hit_rate": loc.get("marker_hit_rate_among_marked", nan),
        "train_seconds": section["training"]["seconds"],
        "final_relevance": section["training"]["history"][-1].get("relevance", 0.0),
        "target_layer": loc.get("layer"),
        "localization_by_layer": loc.get("by_layer", {}),
    }


def baseline_hit_rate(row: dict, baseline: dict) -> float:
    """The baseline's lesion hit rate at the row's Grad-CAM layer (a conv2-trained model is
    judged against the baseline's conv2 CAM), falling back to the baseline's own layer."""
    by_layer = baseline.get("localization_by_layer", {})
    layer = row.get("target_layer")
    return by_layer[layer]["lesion_hit_rate"] if layer in by_layer else baseline["lesion_hit_rate"]


def goals_met(row: dict, baseline: dict) -> dict:
    """The shortcut issue's four goals for `row` against its setting's baseline (a NaN figure
    meets nothing)."""
    g = GOALS
    ratio_cap = g["ratio_factor"] * baseline.get("marker_to_lesion_ratio", math.nan)
    return {
        "marker_auc": row.get("within_class_marker_auc", math.nan) <= g["marker_auc"],
        "marker_ratio": row.get("marker_to_lesion_ratio", math.nan) <= ratio_cap,
        "accuracy_gain": row["decor_accuracy"] >= baseline["decor_accuracy"] + g["accuracy_gain"],
        "no_accuracy_cost": row["corr_accuracy"] >= baseline["corr_accuracy"]
        - g["corr_accuracy_cost"],
    }


def gap_closed(row: dict, baseline: dict, control: dict, key: str) -> float:
    """(row - baseline) / (control - baseline): the fraction of the shortcut gap a row closes
    against a converged control (1 = as good as training without the shortcut)."""
    gap = control.get(key, math.nan) - baseline.get(key, math.nan)
    return (row.get(key, math.nan) - baseline.get(key, math.nan)) / gap if gap else math.nan


def shortcut_verdict(report: dict, variant: str = "gfsr") -> dict:
    """The four goals for `variant` against the study's "baseline", on the benchmark's
    decorrelated split ({} when either is missing or the data has no marker twins)."""
    if not all(k in report for k in ("baseline", variant)) or \
            "marker_removed" not in report["baseline"].get("robustness", {}):
        return {}
    b, g = summarise(report["baseline"]), summarise(report[variant])
    met = goals_met(g, b)
    return {
        f"within-class marker AUC <= {GOALS['marker_auc']:.2f} (chance 0.5)":
            (b["within_class_marker_auc"], g["within_class_marker_auc"], met["marker_auc"]),
        f"marker / lesion effect <= {GOALS['ratio_factor']} x baseline":
            (b["marker_to_lesion_ratio"], g["marker_to_lesion_ratio"], met["marker_ratio"]),
        f"decorrelated accuracy >= baseline + {GOALS['accuracy_gain']:.2f}":
            (b["decor_accuracy"], g["decor_accuracy"], met["accuracy_gain"]),
        f"correlated accuracy >= baseline - {GOALS['corr_accuracy_cost']:.2f}":
            (b["corr_accuracy"], g["corr_accuracy"], met["no_accuracy_cost"]),
    }


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def describe(report: dict, variant: str) -> list[str]:
    options = report[variant]["training"].get("relevance") or {}
    layer = report[variant].get("target_layer") or report["config"]["model"]["target_layer"]
    lines = ["", f"## {variant}: guided focus (GFSR)", "",
             f"**GFSR configuration:** {gfsr_configuration(options, layer)}; masks: "
             f"{report[variant]['training'].get('guidance') or options.get('mask_source')}."]
    verdict = shortcut_verdict(report, variant)
    if verdict:
        lines += ["", f"### Does guided focus remove the shortcut? ({variant} vs baseline)", "",
                  f"| goal | baseline | {variant} | met |", "|---|---|---|---|"]
        for goal, (b, g, ok) in verdict.items():
            lines.append(f"| {goal} | {_fmt(b)} | {_fmt(g)} | {'yes' if ok else 'no'} |")
    return lines
