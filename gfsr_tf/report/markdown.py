"""summary.md from report.json alone. Method-specific sections come from each method's
`describe`."""
from __future__ import annotations

import numpy as np

from ..methods.gfsr.describe import layercam_models, verdict_markdown
from .basics import ci, fmt

MODEL_ORDER = ("baseline", "gfsr", "gfsr_plus")


def variants(report: dict) -> list[str]:
    names = [k for k in report if isinstance(report[k], dict) and "metrics" in report[k]]
    return sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else 99, n))


def map_label(report: dict, names) -> str:
    """What the map figures of `names` show: "Grad-CAM", or which models are read with the
    LayerCAM they were trained towards (report key `saliency`; older reports: Grad-CAM)."""
    other = layercam_models(report, names)
    return "Grad-CAM" if not other else f"Grad-CAM (LayerCAM for {', '.join(other)})"


def method_of(report: dict, variant: str) -> str:
    """The variant's method (reports from before methods existed: GFSR if it had a relevance
    weight, else the baseline)."""
    training = report[variant].get("training", {})
    if training.get("method"):
        return training["method"]
    rel = training.get("relevance") or {}
    return "gfsr" if rel.get("weight", 0) > 0 or rel.get("input_gradient_weight", 0) > 0 \
        else "baseline"


def _audit_table(report, names) -> list[str]:
    audited = [n for n in names if report[n].get("audit")]
    if not audited:
        return []
    a0 = report[audited[0]]["audit"]
    lines = ["", f"## Shortcut audit ({a0['split']}; {a0['marker_source']}; effects in logits)",
             "", "Threshold-free reliance on the marker: the causal effect of removing / adding "
             "it (ATE, mean logit change), how well the output separates marked from unmarked "
             "images within each class (AUC; 0.5 = ignores the marker), and the observational "
             "marker effect over the lesion effect. Deletion AUC: lower = the map finds what the "
             "score needs; insertion AUC: higher = the same.", "",
             "| model | ATE removal | ATE addition | within-class marker AUC | marker / lesion "
             "effect | twin accuracy | marker-added accuracy | CAM mass on marker (area) | "
             "CAM-fooling rate | deletion AUC | insertion AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in audited:
        a = report[n]["audit"]

        def cell(key):
            v = a.get(key)
            return ci(v) if isinstance(v, dict) and "estimate" in v else fmt(v)
        mass = f"{cell('cam_marker_mass')} ({fmt(a.get('marker_area_share'))})" \
            if "cam_marker_mass" in a else "–"
        ratio = (f"{fmt(a.get('marker_effect'))} / {fmt(a.get('lesion_effect'))} = "
                 f"{fmt(a.get('marker_to_lesion_ratio'))}") if "lesion_effect" in a else "–"
        auc = a.get("within_class_marker_auc", {}).get("mean")
        lines.append(f"| {n} | {cell('marker_effect_removal')} | {cell('marker_effect_addition')}"
                     f" | {fmt(auc)} | {ratio} | {fmt(a.get('twin_accuracy'))} | "
                     f"{fmt(a.get('marker_added_accuracy'))} | {mass} | "
                     f"{fmt(a.get('cam_fooling_rate'))} | {fmt(a.get('deletion_auc'))} | "
                     f"{fmt(a.get('insertion_auc'))} |")
    return lines


def _method_sections(report, names) -> list[str]:
    from ..methods import get_method
    lines = []
    for n in names:
        try:
            method = get_method(method_of(report, n))
        except ValueError:  # a method registered only in the process that ran the study
            lines += ["", f"({n}: method {method_of(report, n)!r} is not registered here; its "
                      "own section is not rendered)"]
            continue
        lines += method.describe(report, n)
    return lines


def _maps_table(report, names) -> list[str]:
    """The maps evaluator: every map of every model against the lesion masks, for faithfulness
    and for the marker; patch models' twin decomposition."""
    rows = [(n, name, m) for n in names for name, m in (report[n].get("maps") or {}).items()]
    if not rows:
        return []
    split = report[names[0]].get("maps_split", "test")
    lines = ["", f"## Explanation maps against the lesion masks ({split}; thresholds tuned on "
             "validation)", "",
             "| model | map | hit rate (95% CI) | mIoU TP only | mIoU TP/FP/FN | mIoU TP/FP/FN, "
             "below-Youden maps empty | deletion AUC ↓ | insertion AUC ↑ | argmax on the "
             "marker (marked positives) |", "|---|---|---|---|---|---|---|---|---|"]
    for n, name, m in rows:
        per_class = m.get("per_class", {})
        hit = ci(next(iter(per_class.values()))["hit_rate_ci"]) if len(per_class) == 1 \
            else fmt(m.get("hit_rate_macro"))
        lines.append(f"| {n} | {name} | {hit} | {fmt(m.get('miou_tp_macro'))} | "
                     f"{fmt(m.get('miou_tpfpfn_macro'))} | {fmt(m.get('miou_tpfpfn_youden'))} | "
                     f"{fmt(m.get('deletion_auc'))} | {fmt(m.get('insertion_auc'))} | "
                     f"{fmt(m.get('marker_argmax_share'))} |")
    for n in names:
        t = report[n].get("patch_twins")
        if t:
            lines += ["", f"`{n}` on {t['pairs']} twin pairs (marker vs none): image logit "
                      f"change {t['mean_image_logit_change']:+.3f}, of which the "
                      f"{t['marker_patches_per_image']:.1f} patches touching the marker move "
                      f"{t['mean_change_in_marker_patches']:+.3f} on average; largest change of "
                      f"any other patch {t['max_abs_change_outside_marker_patches']:.1e}; "
                      f"ΔZ = mean Δz_i to {t['max_decomposition_error']:.1e}."]
    return lines


def summary_markdown(report: dict, figures: list[str] | None = None) -> str:
    """figures: the figure files the run folder holds (render_run passes those it wrote)."""
    names = variants(report)
    lines = [f"# {report['config']['name']}", ""]
    if report.get("smoke"):
        lines += ["**Smoke run** (tiny sizes): numbers are not meaningful.", ""]
    for w in report.get("warnings", []):
        lines.append(f"> **Warning:** {w}")
    if "segx" in report and not names:  # the SegX study: its own tables only
        from ..methods.segmenter.report import segx_markdown
        return "\n".join(lines + segx_markdown(report)) + "\n"
    lines += ["", "Variants: " + ", ".join(f"`{n}` ({method_of(report, n)})" for n in names)
              + "."]
    lines += verdict_markdown(report)
    splits = list(report[names[0]]["metrics"]) if names else []
    for split in splits:
        lines += ["", f"## Classification – {split} (95% bootstrap CI)", "",
                  "| model | threshold | sensitivity | specificity | accuracy | AUC | F1 |",
                  "|---|---|---|---|---|---|---|"]
        for n in names:
            m = report[n]["metrics"][split]
            for label, key in (("0.5", "ci"), ("Youden (val)", "at_youden_threshold")):
                if key not in m:
                    continue
                c = m[key]
                t = label if key == "ci" else f"{label} {c['threshold']:.2f}"
                lines.append(f"| {n} | {t} | " + " | ".join(
                    ci(c[k]) for k in ("sensitivity", "specificity", "accuracy", "auc", "f1"))
                    + " |")
    classes = report.get("class_names") or ["normal", "pneumonia"]
    split = "decorrelated test split" if "test_decorrelated" in splits else "test split"
    if any(report[n].get("robustness") for n in names):
        lines += ["", f"## Robustness: decisions under perturbation ({split})", "",
                  "| model | perturbation | agreement | flip rate | flip among marked | mean Δp "
                  "(decided class) | flips (from→to: count) |",
                  "|---|---|---|---|---|---|---|"]
    for n in names:
        for key, r in report[n].get("robustness", {}).items():
            marked = r.get("among_marked", {}).get("flip_rate")
            flips = "; ".join(f"{classes[a]}→{classes[b]}: {v}"
                              for (a, b), v in np.ndenumerate(np.asarray(r["flip_confusion"]))
                              if a != b and v) or "none"
            flip = ci(r["flip_rate_ci"]) if "flip_rate_ci" in r else fmt(r["flip_rate"])
            lines.append(f"| {n} | {key} | {fmt(r['agreement_rate'])} | {flip} | "
                         f"{fmt(marked)} | {fmt(r.get('mean_probability_change'))} | "
                         f"{flips} |")
    lines += _audit_table(report, names)
    if names and report[names[0]].get("localization"):
        layer = report[names[0]]["localization"].get("layer")
        lines += ["", f"## {map_label(report, names)} localization (true class, images with a "
                  "lesion mask, layer "
                  f"`{layer}`)", "",
                  "| model | lesion hit rate | lesion mIoU (Otsu) | lesion IoU@top5% | lesion AUITC "
                  "| lung hit rate | marker hit rate (marked) |",
                  "|---|---|---|---|---|---|---|"]
        for n in names:
            loc = report[n].get("localization") or {}
            keys = ("lesion_hit_rate", "lesion_miou_otsu", "lesion_iou_top5", "lesion_auitc",
                    "lung_hit_rate", "marker_hit_rate_among_marked")
            cells = [ci(loc[k + "_ci"]) if k + "_ci" in loc else fmt(loc.get(k)) for k in keys]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if names and "focus" in report[names[0]]:
        f0 = report[names[0]]["focus"]
        lines += ["", f"## Grad-CAM focus on the {f0['region'].replace('_', ' ')} (true class, "
                  f"layer `{f0['layer']}`, {f0['n']} test images)", "",
                  f"The region is drawn on each test image by the template rule; it covers "
                  f"{f0['region_fraction']:.0%} of the image, so a map that ignores it would put "
                  "about that share of its energy inside.", "",
                  "| model | pointing-game hit rate | energy inside the region |", "|---|---|---|"]
        for n in names:
            f = report[n].get("focus")
            if f:
                lines.append(f"| {n} | {ci(f['hit_rate_ci'])} | {ci(f['energy_inside_ci'])} |")
    lines += _maps_table(report, names)
    comparisons = report.get("comparisons") or (
        {"gfsr": report["comparison"]} if "comparison" in report else {})
    for variant, by_split in comparisons.items():
        lines += ["", f"## {variant} minus baseline (paired bootstrap, 95% CI)", "",
                  "| split | metric | difference | 95% CI | p |", "|---|---|---|---|---|"]
        for split, metrics in by_split.items():
            for metric, c in metrics.items():
                p = f"{c['p_value']:.3f}" if "p_value" in c else "–"
                lines.append(f"| {split} | {metric} | {c['estimate']:+.3f} | "
                             f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {p} |")
    lines += _method_sections(report, names)
    if "masks" in report:
        m = report["masks"]
        lines += ["", "## Relevance masks propagated from annotations", ""]
        if m.get("annotator") == "template":
            lines += [f"**Annotator: template.** {m.get('note', '').capitalize()}.", ""]
        lines += [f"{m['n_annotated_segments']} annotated segments in {m['n_annotated_images']} "
                  f"images ({m['source']}); concept scores "
                  + ", ".join(f"{v:.2f}" for v in m["concept_scores"])
                  + f"; {m['timings']['images_per_s']:.0f} images/s"
                  + (" (cached)" if m["cached"] else "") + "."]
        concepts = m.get("config", {})
        if concepts.get("position_weight", 0) > 0:
            lines += ["", f"**Concepts with position (extension, not the paper):** each "
                      f"segment's height and distance from the midline were appended to its "
                      f"embedding with weight {concepts['position_weight']:g} before k-means "
                      f"(k = {concepts['k']}); the paper's concepts see the embeddings only."]
        if "lung_pixel_auc" in m:
            rel = m["mean_relevance"]
            lines += ["", f"Lung-field pixel ROC-AUC {fmt(m['lung_pixel_auc'])}; mean relevance "
                      + ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in rel.items())
                      + ". Figure: `concepts.png`."]
        if "shortcut_relevance" in m:
            q = m["shortcut_relevance"]

            def mean(part):   # over the images that have the part (runs before 2026-12-06
                values = [v for v in q[part] if v is not None]   # stored NaN as null)
                return sum(values) / len(values) if values else None

            lines += ["", f"On the {len(q['marker_box'])} marked training images the propagated "
                      f"masks give the marker box a mean relevance of {fmt(mean('marker_box'))}, "
                      f"the {q['template'].replace('_', ' ')} template region "
                      f"{fmt(mean('template_region'))} and the rest of the image "
                      f"{fmt(mean('outside'))} (good masks: low on the box, high in the "
                      "region). Figure: `mask_quality.png`."]
    trained = [n for n in names if report[n].get("training", {}).get("history")]
    if trained:   # a saved model evaluated or audited (gfsr evaluate/audit) trained nothing here
        lines += ["", "## Training", "", "| model | method | epochs | seconds | final loss | "
                  "final relevance loss |", "|---|---|---|---|---|---|"]
    for n in trained:
        t = report[n]["training"]
        last = t["history"][-1]
        lines.append(f"| {n} | {method_of(report, n)} | {len(t['history'])} | "
                     f"{t.get('seconds', 0):.0f} | {fmt(last.get('loss'))} | "
                     f"{fmt(last.get('relevance'))} |")
    if figures is None:
        figures = ["roc.png", "confusion.png", "gradcam_grid.png", "training.png"]
    lines += ["", "Figures: " + (", ".join(f"`{f}`" for f in figures) or "none")
              + "; everything in one page: `report.html`."]
    return "\n".join(lines) + "\n"
