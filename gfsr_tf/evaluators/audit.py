"""The shortcut audit: how much does a model rely on the marker, measured causally and
threshold-free (accuracy at 0.5 can rise while the reliance barely moves)?

On data with counterfactuals (the benchmark renders every image without the marker, `twins`, and
with it, `marker_added`), on the evaluation split, in logits (binary heads; z = log-odds of
class 1):
  marker_effect_removal    ATE of removing the marker: mean z(x) - z(twin) over marked images
  marker_effect_addition   ATE of adding it: mean z(x + marker) - z(x) over unmarked images
  flip_removal / flip_addition   decision changes at 0.5 (flip confusion: both directions)
  within_class_marker_auc  per class, the AUC of z for marked vs unmarked images; mean over
                           classes (0.5: the output ignores the marker)
  marker_effect_by_class, lesion_effect   within-class mean z of marked minus unmarked images;
                           within-marker-status mean z of class 1 minus class 0; and their ratio
  twin_accuracy            accuracy on the marker-free twins (lesion-only competence);
  marker_added_accuracy    accuracy with the marker on every image
  cam_marker_mass          the true-class explanation's energy inside the marker box (marked
                           images), beside the box's area share; cam_fooling_rate: the share
                           of marked images whose decision the marker flips while the map gives
                           the box less than its area share
  deletion_auc / insertion_auc   faithfulness of the map (evaluation.faithfulness), on the
                           first `AUDIT_FAITHFULNESS_IMAGES` images, blurred-image baseline;
                           beside them where each deletion curve starts and ends, and on
                           lesion images the change when only the lesion is blurred
                           (lesion_replaced_change): does the removal remove the evidence?
  lesion_twin_deletion_auc / lesion_twin_insertion_auc   the same curves on the lesion images,
                           the removed pixels taking their values in the exact lesion-free
                           counterpart (benchmark: `lesion_removed`)
  map_template_correlation, lesion_twin_template_*   does the map depend on the image? Each
                           map's correlation with the model's class template (the mean of its
                           maps over the split's images of that class), and the lesion-twin
                           curves with that one template in place of every image's own map,
                           paired against the own maps (a sanity check in the spirit of Adebayo
                           et al. 2018: a map that explains this image should remove this
                           image's evidence faster than a map drawn without looking at it)
Real data without twins gets only the marker-added figures, with a laterality "R" pasted into
the top-left corner of every test image (`paste_marker`): "does my model react to an R?".
"""
from __future__ import annotations

import numpy as np

from ..datasets.synthetic import paste_marker, paste_overlay
from ..metrics import box_masks, decision_change, energy_inside, mean_ci
from ..metrics.faithfulness import blurred_baseline, deletion_insertion
from .context import decide

# >= 200 test images, so that the paired CI against the baseline can resolve a 0.02 difference
AUDIT_FAITHFULNESS_IMAGES = 200
FAITHFULNESS_STEPS = 12


def log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def within_class_auc(z: np.ndarray, labels: np.ndarray, marked: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score
    per_class = {}
    for c in (0, 1):
        sel = labels == c
        if len(np.unique(marked[sel])) == 2:
            per_class[str(c)] = float(roc_auc_score(marked[sel], z[sel]))
    return {"per_class": per_class,
            "mean": float(np.mean(list(per_class.values()))) if per_class else float("nan")}


def observational_effects(z, labels, marked) -> dict:
    """Within-class marker effect and within-marker-status lesion effect, in mean logits."""
    by_class = {str(c): float(z[(labels == c) & marked].mean() - z[(labels == c) & ~marked].mean())
                for c in (0, 1) if ((labels == c) & marked).any() and ((labels == c) & ~marked).any()}
    lesion = [z[(marked == m) & (labels == 1)].mean() - z[(marked == m) & (labels == 0)].mean()
              for m in (False, True)
              if ((marked == m) & (labels == 1)).any() and ((marked == m) & (labels == 0)).any()]
    marker = float(np.mean(list(by_class.values()))) if by_class else float("nan")
    lesion_effect = float(np.mean(lesion)) if lesion else float("nan")
    return {"marker_effect_by_class": by_class, "marker_effect": marker,
            "lesion_effect": lesion_effect,
            "marker_to_lesion_ratio": marker / lesion_effect if lesion_effect else float("nan")}


def evaluate(ctx) -> dict:
    name = ctx.eval_split
    data = ctx.splits[name]
    p = ctx.predict(data.images, name)
    if p.ndim != 1:
        return {}  # the audit's logit effects are defined for single-logit binary heads
    labels = data.labels
    z = log_odds(p)
    out: dict = {"split": name}
    added = data.marker_added if data.marker_added is not None else \
        paste_marker(data.images, seed=ctx.study.train.seed)
    q = ctx.predict(added)
    unmarked = ~data.has_marker if data.has_marker is not None else np.ones(len(data), bool)
    za = log_odds(q)
    out["marker_effect_addition"] = mean_ci((za - z)[unmarked])
    out["flip_addition"] = decision_change(decide(p)[unmarked], decide(q)[unmarked],
                                           p[unmarked], q[unmarked], 2)
    out["marker_added_accuracy"] = float(np.mean(decide(q) == labels))
    if "text" in ctx.study.audit_overlays:  # a text overlay ("AP") pasted into every image
        r = ctx.predict(paste_overlay(data.images, ctx.study.train.seed, "text"))
        out["text_overlay"] = {"effect_addition": mean_ci(log_odds(r) - z),
                               "flip_addition": decision_change(decide(p), decide(r), p, r, 2),
                               "accuracy": float(np.mean(decide(r) == labels))}
    if data.twins is None or data.has_marker is None:
        out["marker_source"] = "pasted laterality marker (no counterfactual twins)"
        return {"audit": out}
    out["marker_source"] = "exact counterfactual twins (benchmark)"
    marked = data.has_marker
    t = ctx.predict(data.twins, f"{name}/marker_removed")  # robustness computed it
    zt = log_odds(t)
    out["marker_effect_removal"] = mean_ci((z - zt)[marked])
    out["flip_removal"] = decision_change(decide(p)[marked], decide(t)[marked], p[marked],
                                          t[marked], 2)
    out["twin_accuracy"] = float(np.mean(decide(t) == labels))
    out["within_class_marker_auc"] = within_class_auc(z, labels, marked)
    out.update(observational_effects(z, labels, marked))
    if data.marker_boxes is not None and marked.any() and ctx.layer:
        heat = ctx.heatmaps(name)[marked]
        boxes = box_masks(data.marker_boxes[marked], heat.shape[1:])
        mass = energy_inside(heat, boxes)["per_image"]
        area = boxes.reshape(len(boxes), -1).mean(1)
        flipped = decide(p)[marked] != decide(t)[marked]
        out["cam_marker_mass"] = mean_ci(mass)
        out["marker_area_share"] = float(area.mean())
        fooled = flipped & ~(np.nan_to_num(mass, nan=0.0) >= area)
        out["cam_fooling_rate"] = float(fooled.mean())
        out["layer"] = ctx.layer
    if ctx.layer:
        # the class templates, saved with the maps (explanations.npz, "templates/*") so that the
        # report's grid shows each model's template beside its maps of single images
        ctx.maps["templates/classes"], ctx.maps["templates/heatmaps"] = class_means(
            ctx.heatmaps(name), labels)
        k = min(AUDIT_FAITHFULNESS_IMAGES, len(data))
        images = data.images[:k].astype(np.float32)

        def probabilities(x):
            probs = ctx.predict(x)
            return np.stack([1 - probs, probs], 1)

        blurred = blurred_baseline(images)
        faith = deletion_insertion(probabilities, images, ctx.heatmaps(name)[:k], labels[:k],
                                   blurred, FAITHFULNESS_STEPS)
        # the means and, per image, for the paired comparison with the baseline
        # (comparison.compare_faithfulness)
        out.update(_curve_figures(faith))
        out["faithfulness_images"] = k
        # where each deletion curve starts (the class probability of the unmodified image): a
        # model surer of its images starts higher, which the deletion AUC alone counts against
        # its map (comparison.compare_faithfulness: the probability the deletion removes)
        starts = faith["curves"]["deletion"][:, 0]
        out["deletion_start_per_image"] = _per_image(starts)
        # Does the deletion's removal remove evidence? Where each curve ends (every pixel
        # replaced by the blurred image's) and, on lesion images, the change of the true
        # class's probability when only the lesion's pixels are replaced. Measured on the
        # benchmark (docs/studies/right-reasons.md, round 9): the models there call the blurred
        # image pneumonia and blurring the lesion leaves it in place, so on pneumonia images the
        # deletion cannot remove the evidence and its AUC reads the curve's start, not the map
        # (the verdict says so: describe.deletion_caution).
        out["deletion_end_per_image"] = _per_image(faith["curves"]["deletion"][:, -1])
        if data.lesions is not None:
            lesion = data.lesions[:k] > 0
            has = lesion.reshape(k, -1).any(1)
            if has.any():
                cls = np.asarray(labels[:k][has], int)
                replaced = np.where(lesion[has][..., None], blurred[has], images[has])
                p_replaced = probabilities(replaced)[np.arange(has.sum()), cls]
                out["lesion_replaced_change"] = mean_ci(p_replaced - starts[has])
        if data.lesion_removed is not None:
            # The benchmark's own removal: each deleted pixel takes its value in the image's
            # exact lesion-free counterpart (inserted pixels: the image's, into that
            # counterpart), on the lesion images among the k - a deletion whose end is known
            # to hold no lesion evidence, which the blur above is not.
            twin = data.lesion_removed[:k].astype(np.float32)
            has = (twin != images).reshape(k, -1).any(1)
            if has.any():
                def twin_curves(maps):  # the image's own maps, and the template control's
                    return deletion_insertion(probabilities, images[has], maps,
                                              labels[:k][has], twin[has], FAITHFULNESS_STEPS)

                curves = twin_curves(ctx.heatmaps(name)[:k][has])
                out["lesion_twin_images"] = int(has.sum())
                # the curve runs from P(true class) of the image to that of its lesion-free twin:
                # a model whose decision does not use the lesion (the marker's) has little to
                # lose, so (AUC - end) / (start - end) is the map's share, read beside the AUC
                for key, column in (("start", 0), ("end", -1)):
                    out[f"lesion_twin_{key}_per_image"] = _per_image(
                        curves["curves"]["deletion"][:, column])
                out.update(_curve_figures(curves, "lesion_twin_"))
                out.update(_template_control(ctx.heatmaps(name), data.labels, k, has,
                                             twin_curves, out))
    return {"audit": out}


def class_means(maps: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, (C, H, W) templates): the mean map of each class's images, classes sorted."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    return classes, np.stack([maps[labels == c].mean(0) for c in classes]).astype(np.float32)


def class_templates(maps: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each image's class template: the mean of the maps of the images of its class - what the
    maps say with the image reduced to its label."""
    classes, means = class_means(maps, labels)
    return means[np.searchsorted(classes, np.asarray(labels))]


def _template_control(maps, labels, k, has, curves_for, audit: dict) -> dict:
    """map_template_correlation over the whole split (maps without spread: excluded, counted);
    the lesion-twin curves of the first k images' lesion images with the class template as
    their map, and the own maps' (`audit`'s lesion_twin_* lists) minus the template's per image:
    deletion, insertion, and the share of the lesion's effect the curve leaves
    (comparison.lesion_twin_share; start and end are the same for both maps)."""
    from .comparison import lesion_twin_share
    template = class_templates(maps, labels)
    flat, flat_t = maps.reshape(len(maps), -1), template.reshape(len(maps), -1)
    spread = flat.std(1) > 0
    corr = np.full(len(maps), np.nan)
    a = flat[spread] - flat[spread].mean(1, keepdims=True)
    b = flat_t[spread] - flat_t[spread].mean(1, keepdims=True)
    corr[spread] = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)
    out = {"map_template_correlation": {**mean_ci(corr), "constant_maps": int((~spread).sum())}}
    curves = curves_for(np.ascontiguousarray(template[:k][has]))
    out.update(_curve_figures(curves, "lesion_twin_template_"))
    for key in ("deletion", "insertion"):
        out[f"lesion_twin_template_{key}_difference"] = mean_ci(
            np.asarray(audit[f"lesion_twin_{key}_per_image"])
            - np.asarray(out[f"lesion_twin_template_{key}_per_image"]))
    own, moved = lesion_twin_share(audit)
    by_template, _ = lesion_twin_share(
        {**audit, "lesion_twin_deletion_per_image": out["lesion_twin_template_deletion_per_image"]})
    if moved.any():
        out["lesion_twin_template_share_difference"] = {
            **mean_ci(own[moved] - by_template[moved]), "n": int(moved.sum())}
    return out


def _per_image(values) -> list[float]:
    """Per-image figures as report.json keeps them (5 decimals)."""
    return [round(float(v), 5) for v in values]


def _curve_figures(faith: dict, prefix: str = "") -> dict:
    """<prefix>deletion_auc / insertion_auc and their per-image lists from deletion_insertion."""
    return {f"{prefix}{key}{part}": value for key in ("deletion", "insertion")
            for part, value in (("_auc", faith[f"{key}_auc"]),
                                ("_per_image", _per_image(faith["per_image"][key])))}
