"""SegX and SegU (Zhang, Zhu, Luo 2025): explanations masked by a segmentation of the clinically
relevant region, and the agreement of explanation and region as a per-prediction certainty.

The public code only writes masked maps; the definitions here follow the paper and the issue:
  T5(m)       pixels strictly above numpy's 95th percentile of m (`top_k_pixels`)
  SegX        maps resized bilinearly to the mask size; order="mask_first" (public code):
              T5(m * seg); "binarise_first" (Eq. 6 literally): T5(m) AND seg. SegX's AUITC
              scores the masked continuous map m * seg
  SegU        c_IoU = IoU(T5(m), seg); c_AUITC = AUITC(m vs seg); an empty segmentation gives
              certainty 0 (no region to agree with)
IoU here uses empty="zero": an empty prediction scores 0 and only an empty ground truth is NaN,
so masking cannot drop the hard cases.
"""
from __future__ import annotations

import math

import numpy as np

from .classification import mean_ci
from .localization import _check, _nanmean, auitc, iou, iou_top_k, top_k_pixels

ORDERS = ("mask_first", "binarise_first")


def _segmentation(seg, shape) -> np.ndarray:
    """Binary segmentations at `shape` (nearest-neighbour resize when the segmenter ran at
    another size)."""
    import cv2
    seg = np.asarray(seg) > 0.5
    if seg.shape[1:] == tuple(shape):
        return seg
    return np.stack([cv2.resize(s.astype(np.uint8), shape[::-1],
                                interpolation=cv2.INTER_NEAREST) > 0 for s in seg])


def segx_prediction(maps, seg, order: str = "mask_first", k: float = 5.0,
                    shape=None) -> np.ndarray:
    """SegX's binary explanation (N, H, W) at `shape` (default: the segmentation's)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    seg = np.asarray(seg)
    shape = tuple(shape or seg.shape[1:])
    maps, seg = _check(maps, _segmentation(seg, shape))
    if order == "mask_first":
        return top_k_pixels(maps * seg, k)
    return top_k_pixels(maps, k) & seg


def segx_scores(maps, seg, truth, order: str = "mask_first", k: float = 5.0) -> dict:
    """Per-image IoU@k% and AUITC of the original and the SegX map against `truth`; NaN where
    the truth is empty."""
    truth = np.asarray(truth).astype(bool)
    if not len(maps) == len(seg) == len(truth):
        raise ValueError(f"{len(maps)} maps, {len(seg)} segmentations and {len(truth)} "
                         "ground-truth masks: one of each per (image, class) pair")
    maps, truth = _check(maps, truth)
    seg = _segmentation(seg, truth.shape[1:])
    defined = truth.reshape(len(truth), -1).any(1)
    segx_iou = iou(segx_prediction(maps, seg, order, k), truth, true_pos_only=False)
    segx_iou[~defined] = np.nan
    return {"original": {"iou_top5": iou_top_k(maps, truth, k, empty="zero")["ious"],
                         "auitc": auitc(maps, truth)["per_image"]},
            "segx": {"iou_top5": segx_iou, "auitc": auitc(maps * seg, truth)["per_image"]}}


def segu_certainty(maps, seg, k: float = 5.0) -> dict:
    """Per (image, class) pair: c_iou = IoU(T5(map), seg) and c_auitc = AUITC(map vs seg); 0
    where the segmentation is empty."""
    seg = np.asarray(seg)
    maps, seg = _check(maps, _segmentation(seg, seg.shape[1:]))
    c_iou = np.nan_to_num(iou_top_k(maps, seg, k, empty="zero")["ious"])
    c_auitc = np.nan_to_num(auitc(maps, seg)["per_image"])
    return {"c_iou": c_iou, "c_auitc": c_auitc}


def iou_ceiling(truth, k: float = 5.0) -> float:
    """The best IoU@k% any map can reach on average: mean min(A, k%) / max(A, k%) for mask area
    fraction A (NaN masks left out)."""
    truth = np.asarray(truth).astype(bool)
    area = truth.reshape(len(truth), -1).mean(1)
    area = area[area > 0]
    frac = k / 100.0
    return float(np.mean(np.minimum(area, frac) / np.maximum(area, frac))) if len(area) \
        else math.nan


def paired_difference(after, before, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Mean of after - before over pairs where both are defined, with a bootstrap CI."""
    after, before = np.asarray(after, np.float64), np.asarray(before, np.float64)
    return {**mean_ci(after - before, n_resamples, seed), "n": int(np.sum(np.isfinite(after - before)))}


def auroc_ci(correct, score, n_resamples: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict:
    """ROC-AUC of `score` separating correct (1) from incorrect (0) pairs, with a seeded
    percentile-bootstrap CI over the pairs; NaN without both kinds."""
    from .classification import _auc_rows
    correct = np.asarray(correct).astype(int)
    score = np.asarray(score, np.float64)
    keep = np.isfinite(score)          # an undefined score (e.g. too few pairs to fit) is left out
    correct, score = correct[keep], score[keep]
    n = len(correct)
    if n == 0 or correct.min() == correct.max():
        return {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "n_correct": int(correct.sum()), "n_incorrect": int(n - correct.sum())}
    point = float(_auc_rows(correct[None], score[None])[0])
    idx = np.random.default_rng(seed).integers(0, n, (n_resamples, n))
    boot = _auc_rows(correct[idx], score[idx])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]) if len(boot) \
        else (math.nan, math.nan)
    return {"estimate": point, "ci_low": float(lo), "ci_high": float(hi),
            "n_correct": int(correct.sum()), "n_incorrect": int(n - correct.sum())}


def risk_coverage(correct, score) -> dict:
    """Selective prediction: keep the pairs with the highest `score`; at each coverage (kept
    share) the risk is the share of incorrect pairs kept. AURC = mean risk over coverages."""
    correct = np.asarray(correct).astype(float)
    if len(correct) == 0:
        return {"coverage": [], "risk": [], "aurc": math.nan}
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    kept = np.arange(1, len(correct) + 1)
    risk = np.cumsum(1 - correct[order]) / kept
    return {"coverage": (kept / len(correct)).tolist(), "risk": risk.tolist(),
            "aurc": float(risk.mean())}


def combined_score(correct, probability, certainty, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Does a certainty add to the class probability? Out-of-fold scores of a logistic
    regression on (logit p, certainty) predicting correctness (stratified k-fold, so no pair is
    scored by a model that saw it); compare their AUROC with p's own. NaN without at least
    `folds` pairs of each kind."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    correct = np.asarray(correct).astype(int)
    if min(correct.sum(), len(correct) - correct.sum()) < folds:
        return np.full(len(correct), np.nan)
    p = np.clip(np.asarray(probability, np.float64), 1e-6, 1 - 1e-6)
    features = np.stack([np.log(p / (1 - p)), np.asarray(certainty, np.float64)], 1)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(LogisticRegression(), features, correct, cv=split,
                             method="predict_proba")[:, 1]


def certainty_summary(correct, scores: dict, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Table 4: mean of each score over correct and incorrect pairs, its AUROC (TP vs FP) with
    CI, and its risk-coverage curve."""
    correct = np.asarray(correct).astype(bool)
    out = {"n_correct": int(correct.sum()), "n_incorrect": int((~correct).sum())}
    for name, values in scores.items():
        values = np.asarray(values, np.float64)
        out[name] = {"correct": _nanmean(values[correct]) if correct.any() else math.nan,
                     "incorrect": _nanmean(values[~correct]) if (~correct).any() else math.nan,
                     "auroc": auroc_ci(correct, values, n_resamples, seed),
                     "risk_coverage": risk_coverage(correct, values)}
    return out
