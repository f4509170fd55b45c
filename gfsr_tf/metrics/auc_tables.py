"""Per-class AUC tables with bootstrap intervals, in two protocols:

  "standard"  the AUC of the whole test set as the estimate, a percentile CI from
              `n_resamples` resamples of the test set's own size (with replacement);
  "paper"     Watanabe et al. 2022 / Karargyris et al. 2021 (Table 1): 30 resamples of 55-60
              images (the size drawn uniformly per resample, with replacement); the estimate is
              the median of the resampled AUCs, the interval their 2.5 and 97.5 percentiles.

Per-class AUC is one-vs-rest on the class's score column (any score: softmax or per-class
sigmoid). "average" is the mean over classes, per resample. With a second model's scores, the
same resamples give paired per-class differences (A - B) and a two-sided bootstrap p-value.
"""
from __future__ import annotations

import math

import numpy as np

from .classification import _auc_rows

PROTOCOLS = {"standard": {"n_resamples": 1000, "sample_size": None},
             "paper": {"n_resamples": 30, "sample_size": (55, 60)}}


def _resamples(n: int, protocol: str, seed: int, n_resamples: int | None) -> list[np.ndarray]:
    spec = PROTOCOLS[protocol]
    rng = np.random.default_rng(seed)
    count = n_resamples or spec["n_resamples"]
    if spec["sample_size"] is None:
        return [rng.integers(0, n, n) for _ in range(count)]
    lo, hi = spec["sample_size"]
    return [rng.integers(0, n, int(rng.integers(lo, hi + 1))) for _ in range(count)]


def _per_class(labels: np.ndarray, scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(C + 1,) AUCs on the images `index` (one-vs-rest per class, then their mean)."""
    classes = scores.shape[1]
    onehot = (labels[index, None] == np.arange(classes)).astype(float).T     # (C, n)
    aucs = _auc_rows(onehot, scores[index].T)
    return np.append(aucs, np.nanmean(aucs) if np.any(np.isfinite(aucs)) else math.nan)


def _summary(point: float, values: np.ndarray, protocol: str) -> dict:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"estimate": point, "ci_low": math.nan, "ci_high": math.nan, "resamples": 0}
    lo, hi = np.percentile(values, [2.5, 97.5])
    estimate = float(np.median(values)) if protocol == "paper" else point
    return {"estimate": float(estimate), "ci_low": float(lo), "ci_high": float(hi),
            "resamples": int(len(values))}


def auc_table(labels, scores, scores_b=None, *, class_names=None, protocol: str = "standard",
              n_resamples: int | None = None, seed: int = 0) -> dict:
    """{class name | "average": {estimate, ci_low, ci_high, resamples}}; with `scores_b` also
    "difference": {class: {estimate, ci_low, ci_high, p_value}} of A - B on paired resamples."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, C) for {len(labels)} labels, got {scores.shape}")
    names = list(class_names or [str(c) for c in range(scores.shape[1])]) + ["average"]
    index = _resamples(len(labels), protocol, seed, n_resamples)
    full = _per_class(labels, scores, np.arange(len(labels)))
    boot = np.array([_per_class(labels, scores, i) for i in index])             # (R, C + 1)
    table = {name: _summary(float(full[k]), boot[:, k], protocol)
             for k, name in enumerate(names)}
    table["protocol"] = protocol
    if scores_b is not None:
        scores_b = np.asarray(scores_b, np.float64)
        if scores_b.shape != scores.shape:
            raise ValueError(f"scores_b {scores_b.shape} must match scores {scores.shape}")
        full_b = _per_class(labels, scores_b, np.arange(len(labels)))
        diff = boot - np.array([_per_class(labels, scores_b, i) for i in index])
        table["difference"] = {}
        for k, name in enumerate(names):
            d = diff[:, k][np.isfinite(diff[:, k])]
            entry = _summary(float(full[k] - full_b[k]), diff[:, k], protocol)
            entry["p_value"] = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))) \
                if len(d) else math.nan
            table["difference"][name] = entry
    return table


def format_auc(entry: dict) -> str:
    """"0.872 (0.840, 0.897)": the papers' Table 1 cell."""
    if not math.isfinite(entry.get("estimate", math.nan)):
        return "–"
    return f"{entry['estimate']:.3f} ({entry['ci_low']:.3f}, {entry['ci_high']:.3f})"
