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
    maps, masks = np.asarray(maps, np.float32), np.asarray(masks).astype(bool)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    if np.isnan(maps).any():
        raise ValueError("saliency maps contain NaN")
    maps = _to_size(maps, masks.shape[1:])
    flat = maps.reshape(len(maps), -1).argmax(1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat].astype(np.float64)
    flat_maps = maps.reshape(len(maps), -1)
    hits[flat_maps.max(1) == flat_maps.min(1)] = 0.0
    hits[~masks.reshape(len(masks), -1).any(1)] = np.nan
    defined = ~np.isnan(hits)
    return {"hit_rate": float(hits[defined].mean()) if defined.any() else float("nan"),
            "hits": hits, "n": int(defined.sum())}


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
