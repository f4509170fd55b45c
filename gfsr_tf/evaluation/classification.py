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


def _accuracy(labels, probs, threshold=0.5):
    return np.mean((probs >= threshold).astype(int) == labels, axis=-1)


def _auc_rows(labels, probs):
    """Vectorised binary ROC-AUC (Mann-Whitney, ties = 1/2) for rows of resampled (labels, probs)."""
    from scipy.stats import rankdata
    ranks = rankdata(probs, axis=-1)
    pos = labels.sum(-1)
    neg = labels.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


METRICS = {"accuracy": _accuracy, "auc": _auc_rows}


def paired_bootstrap(labels, probs_a, probs_b=None, metric: str = "accuracy",
                     n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap 95% CI of a metric of model A, or - with probs_b - of the paired difference
    A - B on the same resampled images, with a two-sided p-value for "no difference"
    (twice the smaller tail fraction of the bootstrap differences around 0)."""
    labels = np.asarray(labels).astype(int)
    fn = METRICS[metric]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n_resamples, len(labels)))
    a = fn(labels[idx], np.asarray(probs_a)[idx])
    point = float(fn(labels[None], np.asarray(probs_a)[None])[0])
    if probs_b is not None:
        a = a - fn(labels[idx], np.asarray(probs_b)[idx])
        point -= float(fn(labels[None], np.asarray(probs_b)[None])[0])
    a = a[np.isfinite(a)]
    lo, hi = np.quantile(a, [(1 - level) / 2, 1 - (1 - level) / 2])
    out = {"estimate": point, "ci_low": float(lo), "ci_high": float(hi),
           "n_resamples": int(len(a))}
    if probs_b is not None:
        out["p_value"] = float(min(1.0, 2 * min(np.mean(a <= 0), np.mean(a >= 0))))
    return out
