"""Localization of saliency maps against ground-truth masks."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def _to_size(maps: np.ndarray, shape) -> np.ndarray:
    if maps.shape[1:] == tuple(shape):
        return maps
    return tf.image.resize(maps[..., None].astype(np.float32), shape,
                           method="bilinear")[..., 0].numpy()


def hit_rate(maps: np.ndarray, masks: np.ndarray) -> dict:
    """Pointing game with CheXlocalize semantics: the saliency map is upsampled bilinearly to the
    mask's size; a hit when its argmax pixel lies inside the mask. A constant (e.g. all-zero)
    map points nowhere and counts as a miss. Images with an empty mask are undefined (NaN per
    image) and excluded from the mean.

    Returns {"hit_rate": mean over defined images (NaN if none), "hits": per-image 1/0/NaN}.
    """
    maps, masks = _check(maps, masks)
    flat = maps.reshape(len(maps), -1).argmax(1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat].astype(np.float64)
    flat_maps = maps.reshape(len(maps), -1)
    hits[flat_maps.max(1) == flat_maps.min(1)] = 0.0
    hits[~masks.reshape(len(masks), -1).any(1)] = np.nan
    defined = ~np.isnan(hits)
    return {"hit_rate": float(hits[defined].mean()) if defined.any() else float("nan"),
            "hits": hits, "n": int(defined.sum())}


def energy_inside(maps: np.ndarray, masks: np.ndarray) -> dict:
    """Energy-based pointing game (Score-CAM, Wang et al. 2020): the share of each map's total
    (non-negative) saliency that falls inside the mask, after bilinear upsampling to the mask's
    size. NaN per image for an all-zero map or an empty mask (excluded from the mean).

    Returns {"energy_inside": mean over defined images, "per_image": values, "n": count}."""
    maps, masks = _check(maps, masks)
    maps = np.clip(maps, 0, None).reshape(len(maps), -1).astype(np.float64)
    masks = masks.reshape(len(masks), -1)
    total = maps.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (maps * masks).sum(1) / total
    share[(total == 0) | ~masks.any(1)] = np.nan
    defined = ~np.isnan(share)
    return {"energy_inside": float(share[defined].mean()) if defined.any() else float("nan"),
            "per_image": share, "n": int(defined.sum())}


def box_masks(boxes: np.ndarray, shape) -> np.ndarray:
    """(N, 4) y0, x0, y1, x1 boxes -> (N, H, W) boolean masks."""
    out = np.zeros((len(boxes),) + tuple(shape), bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        out[i, y0:y1, x0:x1] = True
    return out


def pixel_auc(maps: np.ndarray, regions: np.ndarray) -> float:
    """ROC-AUC of per-pixel scores `maps` (N, H, W) for separating the pixels inside `regions`
    (N, H, W, boolean) from all others, pooled over the images (maps resized to the regions'
    size first). NaN when every pixel is inside, or none is."""
    from sklearn.metrics import roc_auc_score
    regions = np.asarray(regions).astype(bool)
    maps = _to_size(np.asarray(maps, np.float32), regions.shape[1:])
    if regions.all() or not regions.any():
        return float("nan")
    return float(roc_auc_score(regions.ravel(), maps.ravel()))


# --- segmentation-style localization: binarised saliency vs ground-truth masks -----------------

def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Per-map min-max normalisation to [0, 1]; a constant map becomes all zeros."""
    maps = np.asarray(maps, np.float32)
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(1), flat.max(1)
    span = np.where(high > low, high - low, 1.0)
    return ((flat - low[:, None]) / span[:, None]).reshape(maps.shape)


def _check(maps, masks):
    maps, masks = np.asarray(maps, np.float32), np.asarray(masks).astype(bool)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    if np.isnan(maps).any():
        raise ValueError("saliency maps contain NaN")
    return _to_size(maps, masks.shape[1:]), masks


def binarise(maps: np.ndarray, threshold="otsu") -> np.ndarray:
    """Min-max normalise each map, then keep pixels >= threshold: "otsu" (scikit-image's Otsu
    threshold per map; a constant map keeps nothing) or a number in [0, 1] (e.g. a per-class
    threshold tuned on validation with `tune_threshold`)."""
    from skimage.filters import threshold_otsu
    norm = normalise_maps(maps)
    if threshold != "otsu":
        return norm >= float(threshold)
    out = np.zeros(norm.shape, bool)
    for i, m in enumerate(norm):
        if m.max() > m.min():
            out[i] = m > threshold_otsu(m)
    return out


def iou(pred: np.ndarray, masks: np.ndarray, true_pos_only: bool = True) -> np.ndarray:
    """Per-image IoU of binary predictions and ground-truth masks (N, H, W), CheXlocalize
    semantics (eval_miou.py): with true_pos_only, an image whose mask or prediction is empty is
    undefined (NaN) - only true-positive cases count; otherwise (MedicalPatchNet's TP/FP/FN
    variant) a false positive or false negative scores 0 and only an image with both empty is
    NaN."""
    pred, masks = np.asarray(pred).astype(bool), np.asarray(masks).astype(bool)
    if pred.shape != masks.shape:
        raise ValueError(f"predictions {pred.shape} and masks {masks.shape} differ in shape")
    inter = (pred & masks).reshape(len(pred), -1).sum(1).astype(np.float64)
    union = (pred | masks).reshape(len(pred), -1).sum(1).astype(np.float64)
    out = np.divide(inter, union, out=np.full(len(pred), np.nan), where=union > 0)
    if true_pos_only:
        empty = ~pred.reshape(len(pred), -1).any(1) | ~masks.reshape(len(masks), -1).any(1)
        out[empty] = np.nan
    return out


def _nanmean(values: np.ndarray) -> float:
    defined = ~np.isnan(values)
    return float(values[defined].mean()) if defined.any() else float("nan")


def miou(maps: np.ndarray, masks: np.ndarray, threshold="otsu", true_pos_only: bool = True) -> dict:
    """Mean IoU of binarised saliency maps (`binarise`) against masks; maps are upsampled
    bilinearly to the masks' size first. Returns {"miou", "ious" (per image, NaN = undefined,
    see `iou`), "n" (defined images)}."""
    maps, masks = _check(maps, masks)
    ious = iou(binarise(maps, threshold), masks, true_pos_only)
    return {"miou": _nanmean(ious), "ious": ious, "n": int((~np.isnan(ious)).sum())}


def _threshold_counts(maps, masks, n_thresholds, chunk: int = 256):
    """For thresholds tau_j = j / (n_thresholds - 1): per image, |map >= tau_j| and
    |map >= tau_j and mask| - one bincount over (image, quantised value, in-mask) per chunk of
    images (chunks keep the working set in cache)."""
    steps = n_thresholds - 1
    n = len(maps)
    counts = np.empty((n, steps + 1, 2), np.int64)
    for start in range(0, n, chunk):
        norm = normalise_maps(maps[start:start + chunk]).reshape(-1, maps[0].size)
        m = len(norm)
        # bin b holds values in [b/steps, (b+1)/steps); the value 1 gets the last bin
        bins = np.minimum((norm * steps + 1e-6).astype(np.int32), steps)
        keys = (bins + (np.arange(m, dtype=np.int32) * (steps + 1))[:, None]) * 2
        keys += masks[start:start + chunk].reshape(m, -1)
        counts[start:start + m] = np.bincount(keys.ravel(), minlength=m * (steps + 1) * 2
                                              ).reshape(m, steps + 1, 2)
    # pixels >= tau_j = pixels in bins j..steps
    above_split = np.cumsum(counts[:, ::-1], 1)[:, ::-1]
    above_in = above_split[..., 1].astype(np.float64)
    above = above_split.sum(-1).astype(np.float64)
    return above, above_in, masks.reshape(n, -1).sum(1).astype(np.float64)


def iou_curve(maps: np.ndarray, masks: np.ndarray, n_thresholds: int = 101) -> np.ndarray:
    """IoU of (normalised map >= tau) vs the mask for tau on an even grid of n_thresholds points
    in [0, 1]: (N, n_thresholds); NaN rows for empty masks."""
    maps, masks = _check(maps, masks)
    above, above_in, area = _threshold_counts(maps, masks, n_thresholds)
    union = area[:, None] + above - above_in
    curve = np.divide(above_in, union, out=np.zeros_like(above), where=union > 0)
    curve[area == 0] = np.nan
    return curve


def tune_threshold(maps: np.ndarray, masks: np.ndarray, n_thresholds: int = 101) -> float:
    """The threshold on the normalised maps that maximises the mean IoU over images with a
    non-empty mask (tune on validation, apply to test)."""
    curve = iou_curve(maps, masks, n_thresholds)
    defined = ~np.isnan(curve[:, 0])
    if not defined.any():
        raise ValueError("every mask is empty: no threshold can be tuned")
    return float(np.argmax(curve[defined].mean(0)) / (n_thresholds - 1))


def auitc(maps: np.ndarray, masks: np.ndarray, n_thresholds: int = 101) -> dict:
    """Area under the IoU-vs-threshold curve (SegX): IoU of (normalised map >= tau) for tau on
    an even grid of `n_thresholds` points over [0, 1], integrated with the trapezoidal rule
    (so the area is in [0, 1]). Per image; NaN for empty masks; mean over the rest."""
    curve = iou_curve(maps, masks, n_thresholds)
    x = np.linspace(0.0, 1.0, n_thresholds)
    areas = np.trapezoid(curve, x, axis=1) if hasattr(np, "trapezoid") else np.trapz(curve, x, axis=1)
    return {"auitc": _nanmean(areas), "per_image": areas, "n": int((~np.isnan(areas)).sum())}


def top_k_pixels(maps: np.ndarray, k: float = 5.0) -> np.ndarray:
    """Per map, the pixels strictly above its (100 - k)th percentile (numpy's linear
    interpolation): SegX's T_k binarisation. A constant map keeps nothing."""
    maps = np.asarray(maps, np.float32)
    flat = maps.reshape(len(maps), -1)
    cut = np.percentile(flat, 100.0 - k, axis=1)
    return (flat > cut[:, None]).reshape(maps.shape)


def iou_top_k(maps: np.ndarray, masks: np.ndarray, k: float = 5.0, empty: str = "nan") -> dict:
    """IoU@top-k% (SegX): the `top_k_pixels` of each map (upsampled bilinearly to the masks'
    size) against the masks. empty="nan": images whose mask or prediction is empty are
    undefined (NaN, CheXlocalize); "zero": an empty prediction scores 0 and only an empty
    ground truth is NaN (SegX/SegU: masking a map cannot drop hard cases)."""
    if empty not in ("nan", "zero"):
        raise ValueError(f"empty must be 'nan' or 'zero', got {empty!r}")
    maps, masks = _check(maps, masks)
    ious = iou(top_k_pixels(maps, k), masks, true_pos_only=empty == "nan")
    ious[~masks.reshape(len(masks), -1).any(1)] = np.nan
    return {"iou": _nanmean(ious), "ious": ious, "n": int((~np.isnan(ious)).sum())}
