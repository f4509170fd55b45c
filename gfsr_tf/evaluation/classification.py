"""Classification metrics (paper Table 1 format: sensitivity, specificity, accuracy, AUC)."""
from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve


def binary_metrics(labels, probs, threshold: float = 0.5) -> dict:
    """labels in {0, 1}, probs = P(class 1). AUC is NaN (not a crash) on a single-class set."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, np.float64)
    if labels.shape != probs.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {probs.shape} differ in shape")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or inf")
    pred = (probs >= threshold).astype(int)
    cm = confusion_matrix(labels, pred, labels=[0, 1])
    tn, fp, fn, tp = cm.ravel()
    both = len(np.unique(labels)) == 2
    out = {
        "auc": float(roc_auc_score(labels, probs)) if both else math.nan,
        "accuracy": float((tp + tn) / max(1, len(labels))),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else math.nan,
        "specificity": float(tn / (tn + fp)) if tn + fp else math.nan,
        "confusion_matrix": cm.tolist(),
        "n": int(len(labels)),
    }
    if both:
        fpr, tpr, _ = roc_curve(labels, probs)
        out["roc"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    return out
