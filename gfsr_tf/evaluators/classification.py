"""Classification metrics per test split, at 0.5 and at thresholds chosen on validation; on a
validation split with marker status, the accuracy per group of class x marker."""
from __future__ import annotations

import numpy as np

from ..metrics import (binary_metrics, choose_threshold, classification_metrics,
                       group_accuracy)
from .context import decide


def split_metrics(labels, probs, class_names, thresholds) -> dict:
    """Point metrics (binary: Table-1 figures with the ROC; multi-class: macro one-vs-rest),
    the same with bootstrap CIs (`ci`) and at the validation-chosen thresholds."""
    ci = classification_metrics(labels, probs, 0.5, class_names)
    if probs.ndim == 1:
        out = binary_metrics(labels, probs)
    else:
        out = {k: ci[k]["estimate"] for k in ("auc", "accuracy", "sensitivity", "specificity")}
        out.update(confusion_matrix=ci["confusion_matrix"], n=ci["n"])
    out["ci"] = ci
    for method, t in thresholds.items():
        out[f"at_{method}_threshold"] = classification_metrics(labels, probs, t, class_names)
    return out


def evaluate(ctx) -> dict:
    out: dict = {"metrics": {}, "predictions": {}}
    # Binary operating thresholds chosen on validation (Youden's J, max F1), for every test split.
    val = ctx.splits.get("val")
    thresholds = {}
    if val is not None and val.num_classes == 2 and len(np.unique(val.labels)) == 2:
        val_probs = ctx.predict(val.images, "val")
        thresholds = {m: choose_threshold(val.labels, val_probs, m) for m in ("youden", "f1")}
        out["thresholds"] = thresholds
        if val.has_marker is not None:
            # the criterion every method's setting is chosen by in the comparison of methods
            # (study/compare.py): worst-group accuracy at 0.5 on validation, never on test
            out["validation"] = group_accuracy(decide(val_probs) == val.labels, val.labels,
                                               val.has_marker)
    for name in ctx.tests:
        data = ctx.splits[name]
        probs = ctx.predict(data.images, name)
        out["metrics"][name] = split_metrics(data.labels, probs, data.class_names, thresholds)
        out["predictions"][name] = probs.round(6).tolist()
    return out


def one_class_warnings(model: str, section: dict, splits: dict) -> list[str]:
    """A warning per test split on which a binary model gives every image the same output, or
    puts every image in one class at 0.5 although the split holds both: a prediction that is
    "right" on half the images while its ranking may be good (seen after guided training in
    inference mode: the BatchNorm running statistics describe batches the network never sees
    there)."""
    out = []
    for name, probs in section.get("predictions", {}).items():
        probs, labels = np.asarray(probs), splits[name].labels
        if probs.ndim != 1 or len(np.unique(labels)) < 2:
            continue
        decided = set(np.unique(probs >= 0.5).tolist())
        if np.ptp(probs) == 0:   # seen: Group DRO, seed 2 of the comparison (p = 0.507 on all)
            out.append(f"{model}: every {name} image gets the same output (p = {probs[0]:.3f}):"
                       " the model is constant - its accuracy, AUC, audit and maps carry no "
                       "information about the images")
        elif len(decided) == 1:
            auc = section["metrics"][name]["auc"]
            out.append(f"{model}: every {name} image is predicted "
                       f"'{splits[name].class_names[int(decided.pop())]}' at threshold 0.5 "
                       f"(AUC {auc:.3f}): its outputs sit on one side of 0.5; read its AUC and "
                       "ranking figures, not its accuracy (a BatchNorm network trained with "
                       "extra training-mode passes: try re-estimating its statistics, "
                       "gfsr's bn_recalibration)")
    return out
