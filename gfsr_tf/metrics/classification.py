"""Classification metrics (paper Table 1 format: sensitivity, specificity, accuracy, AUC)."""
from __future__ import annotations

import math
import warnings

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


def group_accuracy(correct, labels, has_marker) -> dict:
    """Accuracy per group of class x marker status (the groups JTT, DFR and Group DRO are judged
    on: group 2*label + marked) and the worst of the groups present; `correct` is a boolean per
    image."""
    correct, labels = np.asarray(correct, bool), np.asarray(labels).astype(int)
    groups = 2 * labels + np.asarray(has_marker).astype(int)
    names = ("class0_unmarked", "class0_marked", "class1_unmarked", "class1_marked")
    per_group = {names[g]: float(correct[groups == g].mean()) for g in range(4)
                 if (groups == g).any()}
    return {"worst_group_accuracy": min(per_group.values()) if per_group else math.nan,
            "group_accuracy": per_group,
            "group_sizes": {names[g]: int((groups == g).sum()) for g in range(4)}}


def _auc_rows(labels, probs):
    """Vectorised binary ROC-AUC (Mann-Whitney, ties = 1/2) for rows of resampled (labels, probs)."""
    from scipy.stats import rankdata
    ranks = rankdata(probs, axis=-1)
    pos = labels.sum(-1)
    neg = labels.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * labels).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def paired_bootstrap(labels, probs_a, probs_b=None, metric: str = "accuracy",
                     n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap 95% CI of a metric of model A, or - with probs_b - of the paired difference
    A - B on the same resampled images, with a two-sided p-value for "no difference"
    (twice the smaller tail fraction of the bootstrap differences around 0). Binary (P(class 1)
    at 0.5) or multi-class ((N, K): argmax accuracy, one-vs-rest macro AUC), as in
    `classification_metrics`."""
    labels = np.asarray(labels).astype(int)
    if metric not in ("accuracy", "auc"):
        raise ValueError(f"metric must be 'accuracy' or 'auc', got {metric!r}")
    probs_a = _as_probs(probs_a)
    probs_b = None if probs_b is None else _as_probs(probs_b)

    def fn(rows_labels, rows_probs):
        return _metric_rows(rows_labels, rows_probs, 0.5)[metric]
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


# --- every Table-1 figure with a bootstrap CI, binary or multi-class, vectorised ---------------

def _as_probs(probs: np.ndarray) -> np.ndarray:
    """(N,) P(class 1) or (N, K) class probabilities -> (N, K)."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], -1)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (N,) or (N, K), got {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or inf")
    return probs


def _metric_rows(labels: np.ndarray, probs: np.ndarray, threshold: float | None) -> dict:
    """Metrics for R resampled sets at once: labels (R, N) int, probs (R, N, K).

    Binary (K = 2): sensitivity = recall of class 1, specificity = recall of class 0,
    precision/F1 of class 1, predictions P(1) >= threshold. Multi-class: argmax predictions;
    sensitivity, specificity, precision and F1 are macro averages over classes (one-vs-rest),
    AUC the one-vs-rest macro AUC (classes absent from a resample are skipped)."""
    r, n, k = probs.shape
    pred = (probs[..., 1] >= threshold).astype(int) if k == 2 and threshold is not None \
        else probs.argmax(-1)
    cm = np.bincount((np.arange(r)[:, None] * k * k + labels * k + pred).ravel(),
                     minlength=r * k * k).reshape(r, k, k).astype(np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    fn = cm.sum(2) - tp
    fp = cm.sum(1) - tp
    tn = n - tp - fn - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall, spec = tp / (tp + fn), tn / (tn + fp)
        precision = tp / (tp + fp)
        f1 = 2 * tp / (2 * tp + fp + fn)
        aucs = np.stack([_auc_rows((labels == c).astype(int), probs[..., c]) for c in range(k)], -1)
    out = {"accuracy": tp.sum(1) / n}
    if k == 2:
        out.update(auc=aucs[:, 1], sensitivity=recall[:, 1], specificity=recall[:, 0],
                   precision=precision[:, 1], f1=f1[:, 1])
    else:
        with warnings.catch_warnings():  # all-NaN columns (absent classes) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            out.update(auc=np.nanmean(aucs, 1), sensitivity=np.nanmean(recall, 1),
                       specificity=np.nanmean(spec, 1), precision=np.nanmean(precision, 1),
                       f1=np.nanmean(f1, 1))
    out["_per_class"] = {"recall": recall, "specificity": spec, "precision": precision, "f1": f1,
                         "auc": aucs}
    out["_confusion"] = cm
    return out


def classification_metrics(labels, probs, threshold: float | None = 0.5, class_names=None,
                           n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Accuracy, AUC, sensitivity, specificity, precision, F1 (see `_metric_rows` for the
    binary vs multi-class definitions), each as {estimate, ci_low, ci_high} with a seeded
    percentile-bootstrap CI over `n_resamples` resamples of the test images (NaN resamples, e.g.
    single-class ones for AUC, are dropped); per-class values and the confusion matrix.

    labels: (N,) ints; probs: (N,) P(class 1) or (N, K). threshold: binary decision threshold
    on P(class 1) (e.g. from `choose_threshold` on validation); ignored for K > 2.
    """
    labels = np.asarray(labels).astype(int)
    probs = _as_probs(probs)
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels but {len(probs)} probability rows")
    k = probs.shape[1]
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= k:
        raise ValueError(f"labels must be in 0..{k - 1}")
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    point = _metric_rows(labels[None], probs[None], threshold)
    rng = np.random.default_rng(seed)
    out: dict = {"n": int(len(labels)), "threshold": threshold if k == 2 else None}
    rows = {key: [] for key in point if not key.startswith("_")}
    for start in range(0, n_resamples, 250):  # chunks bound the (R, N, K) memory
        idx = rng.integers(0, len(labels), (min(250, n_resamples - start), len(labels)))
        boot = _metric_rows(labels[idx], probs[idx], threshold)
        for key in rows:
            rows[key].append(boot[key])
    for key in rows:
        values = np.concatenate(rows[key])
        values = values[np.isfinite(values)]
        lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if len(values) \
            else (math.nan, math.nan)
        out[key] = {"estimate": float(point[key][0]), "ci_low": float(lo), "ci_high": float(hi)}
    out["per_class"] = {name: {m: float(v[0, c]) for m, v in point["_per_class"].items()}
                        for c, name in enumerate(names)}
    out["confusion_matrix"] = point["_confusion"][0].astype(int).tolist()
    return out


def choose_threshold(labels, probs, method: str = "youden") -> float:
    """A binary operating threshold on P(class 1), chosen on validation: "youden" maximises
    sensitivity + specificity - 1 over the ROC curve's thresholds, "f1" maximises F1 over the
    precision-recall curve's thresholds."""
    from sklearn.metrics import precision_recall_curve
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, np.float64)
    if len(np.unique(labels)) < 2:
        raise ValueError("choosing a threshold needs both classes in the validation labels")
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(labels, probs)
        best = np.argmax(tpr - fpr)
        return float(min(thresholds[best], 1.0))
    if method == "f1":
        precision, recall, thresholds = precision_recall_curve(labels, probs)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
        return float(thresholds[np.argmax(f1)])
    raise ValueError(f"method must be 'youden' or 'f1', got {method!r}")


def mean_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of per-image values (e.g. flip indicators, pointing-game hits; NaN = undefined,
    excluded) with a seeded percentile-bootstrap CI over the images."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    idx = np.random.default_rng(seed).integers(0, len(values), (n_resamples, len(values)))
    lo, hi = np.quantile(values[idx].mean(1), [(1 - level) / 2, (1 + level) / 2])
    return {"estimate": float(values.mean()), "ci_low": float(lo), "ci_high": float(hi)}


# --- multi-label: one sigmoid per class, per-class thresholds -----------------------------------

def _counts_above(labels: np.ndarray, probs: np.ndarray, candidates: np.ndarray):
    """(tp, fp, fn, tn) of the decisions p > tau for each candidate tau."""
    above = probs[None, :] > candidates[:, None]
    pos = labels.astype(bool)[None, :]
    tp = (above & pos).sum(1).astype(np.float64)
    fp = (above & ~pos).sum(1).astype(np.float64)
    return tp, fp, pos.sum() - tp, (~pos).sum() - fp


def multilabel_thresholds(label_sets, probs, rule: str = "f1", class_names=None,
                          warnings_out: list | None = None) -> np.ndarray:
    """Per-class thresholds tau_j on validation for decisions p_j > tau_j: "f1" maximises the
    class's F1, "youden" its sensitivity + specificity - 1 (candidates: 0 and every validation
    probability; ties keep the highest tau). A class without positives (or without negatives)
    in validation gets 0.5, with a warning appended to `warnings_out`."""
    sets, probs = np.asarray(label_sets).astype(int), np.asarray(probs, np.float64)
    if sets.shape != probs.shape or sets.ndim != 2:
        raise ValueError(f"label sets {sets.shape} and probabilities {probs.shape} must be the "
                         "same (N, K) shape")
    if rule not in ("f1", "youden"):
        raise ValueError(f"rule must be 'f1' or 'youden', got {rule!r}")
    names = list(class_names) if class_names is not None else [str(j) for j in range(sets.shape[1])]
    out = np.full(sets.shape[1], 0.5)
    for j in range(sets.shape[1]):
        if sets[:, j].min() == sets[:, j].max():
            message = (f"class {names[j]!r} has {'no positives' if sets[:, j].max() == 0 else 'no negatives'} "
                       "in validation: its threshold is 0.5")
            warnings.warn(message, stacklevel=2)
            if warnings_out is not None:
                warnings_out.append(message)
            continue
        candidates = np.unique(np.concatenate([[0.0], probs[:, j]]))
        tp, fp, fn, tn = _counts_above(sets[:, j], probs[:, j], candidates)
        score = 2 * tp / np.maximum(2 * tp + fp + fn, 1) if rule == "f1" else \
            tp / (tp + fn) + tn / (tn + fp) - 1
        out[j] = candidates[len(score) - 1 - np.argmax(score[::-1])]
    return out


def _multilabel_rows(sets: np.ndarray, probs: np.ndarray, tau: np.ndarray) -> dict:
    """Per-class metrics for R resamples at once: sets, probs (R, N, K) -> (R, K) each."""
    from sklearn.metrics import average_precision_score
    pred = probs > tau
    pos = sets.astype(bool)
    tp = (pred & pos).sum(1).astype(np.float64)
    fp = (pred & ~pos).sum(1).astype(np.float64)
    fn = (~pred & pos).sum(1).astype(np.float64)
    tn = (~pred & ~pos).sum(1).astype(np.float64)
    r, _, k = probs.shape
    auprc = np.full((r, k), np.nan)
    for i in range(r):
        for j in range(k):
            if 0 < pos[i, :, j].sum() < pos.shape[1]:
                auprc[i, j] = average_precision_score(pos[i, :, j], probs[i, :, j])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"auroc": np.stack([_auc_rows(sets[..., j], probs[..., j]) for j in range(k)], -1),
                "auprc": auprc, "f1": 2 * tp / (2 * tp + fp + fn),
                "sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp)}


def multilabel_metrics(label_sets, probs, thresholds, class_names=None, n_resamples: int = 500,
                       seed: int = 0, level: float = 0.95) -> dict:
    """Per class and macro (mean over classes): AUROC, AUPRC, F1, sensitivity and specificity
    at the per-class thresholds, each {estimate, ci_low, ci_high} with a seeded percentile
    bootstrap over images (a resample where a class is single-valued leaves that class out of
    that resample's macro mean)."""
    sets, probs = np.asarray(label_sets).astype(int), np.asarray(probs, np.float64)
    tau = np.asarray(thresholds, np.float64)
    if sets.shape != probs.shape or sets.ndim != 2 or tau.shape != (sets.shape[1],):
        raise ValueError(f"label sets {sets.shape}, probabilities {probs.shape} and thresholds "
                         f"{tau.shape} do not match: (N, K), (N, K), (K,)")
    names = list(class_names) if class_names is not None else [str(j) for j in range(sets.shape[1])]
    point = _multilabel_rows(sets[None], probs[None], tau)
    idx = np.random.default_rng(seed).integers(0, len(sets), (n_resamples, len(sets)))
    boot = _multilabel_rows(sets[idx], probs[idx], tau)

    def summary(value, samples):
        samples = samples[np.isfinite(samples)]
        lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2]) if len(samples) \
            else (math.nan, math.nan)
        return {"estimate": float(value), "ci_low": float(lo), "ci_high": float(hi)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {"n": int(len(sets)), "thresholds": dict(zip(names, tau.tolist())),
               "per_class": {name: {m: summary(point[m][0, j], boot[m][:, j]) for m in point}
                             for j, name in enumerate(names)},
               "macro": {m: summary(np.nanmean(point[m][0]), np.nanmean(boot[m], 1))
                         for m in point}}
    return out
