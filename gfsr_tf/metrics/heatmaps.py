"""Heatmap-versus-heatmap metrics (a predicted gaze or explanation map against a reference map),
as the eye-gaze papers report them (Watanabe et al. 2022; Pham et al. 2024: IoUs x 100).

Both maps are max-normalised per image first (an all-zero map stays zero). SSIM and PSNR come
from scikit-image with data range 1, computed per image and averaged; L1 and L2 (mean square)
are means over all pixels. The IoUs binarise both maps and pool one confusion matrix over all
pixels of all images (a per-image mean would weigh a tiny image like a large one):
  fg_iou = TP / (TP + FP + FN), bg_iou = TN / (TN + FN + FP),
  fw_iou = f_fg fg_iou + f_bg bg_iou, with the ground truth's class frequencies f.
Binarisation ("levels", the reference tool's rule): quantise each map to 8-bit levels and keep
the levels above the floor(U / 5)-th of its U distinct levels (sorted ascending), so the faint
fifth of a heatmap's levels counts as background; "positive": everything > 0.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

BINARISATIONS = ("levels", "positive")


def as_maps(value, name: str) -> np.ndarray:
    """(N, H, W) float64 maps in [0, 1] (a (H, W) map gets N = 1), or a ValueError naming
    `name`."""
    maps = np.asarray(value, np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (H, W) maps, got shape {maps.shape}")
    if not np.all(np.isfinite(maps)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if maps.min(initial=0) < 0 or maps.max(initial=0) > 1:
        raise ValueError(f"{name} must lie in [0, 1], got [{maps.min():.4g}, {maps.max():.4g}]")
    return maps


def max_normalise(maps: np.ndarray) -> np.ndarray:
    peak = maps.reshape(len(maps), -1).max(1)
    return maps / np.where(peak > 0, peak, 1.0)[:, None, None]


def binarise_map(heatmap: np.ndarray, rule: str = "levels") -> np.ndarray:
    """One (H, W) map in [0, 1] -> bool foreground (see the module docstring)."""
    if rule == "positive":
        return heatmap > 0
    if rule != "levels":
        raise ValueError(f"binarise must be one of {', '.join(BINARISATIONS)}, got {rule!r}")
    quantised = np.round(heatmap * 255).astype(np.int64)
    levels = np.unique(quantised)
    return quantised > levels[len(levels) // 5]


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's SSIM (7x7 window, shrunk to the largest odd size a small map allows; NaN
    for maps under 3 px on a side, where no window fits)."""
    from skimage.metrics import structural_similarity
    side = min(a.shape)
    if side < 3:
        return math.nan
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=1.0, win_size=window))


def heatmap_metrics(pred, target, binarise: str = "levels") -> dict:
    """{fg_iou, bg_iou, fw_iou (fractions), ssim, psnr (dB), l1, l2} of predicted maps against
    target maps, both (N, H, W) or (H, W) in [0, 1]."""
    from skimage.metrics import peak_signal_noise_ratio
    pred, target = as_maps(pred, "pred"), as_maps(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} must have the same shape")
    if binarise not in BINARISATIONS:
        raise ValueError(f"binarise must be one of {', '.join(BINARISATIONS)}, got {binarise!r}")
    pred, target = max_normalise(pred), max_normalise(target)
    p = np.stack([binarise_map(m, binarise) for m in pred])
    t = np.stack([binarise_map(m, binarise) for m in target])
    tp, fp = np.sum(p & t), np.sum(p & ~t)
    fn, tn = np.sum(~p & t), np.sum(~p & ~t)
    if tp + fp + fn == 0:
        warnings.warn("heatmap_metrics: no foreground in either map set; fg_iou is NaN",
                      stacklevel=2)
        fg = math.nan
    else:
        fg = tp / (tp + fp + fn)
    bg = tn / (tn + fn + fp) if tn + fn + fp else math.nan
    f_fg = t.mean()
    fw = (f_fg * fg if f_fg else 0.0) + (1 - f_fg) * bg
    with np.errstate(divide="ignore"):
        psnr = [peak_signal_noise_ratio(t_, p_, data_range=1.0) for t_, p_ in zip(target, pred)]
    return {"fg_iou": float(fg), "bg_iou": float(bg), "fw_iou": float(fw),
            "ssim": float(np.mean([_ssim(p_, t_) for p_, t_ in zip(pred, target)])),  # NaN < 3 px
            "psnr": float(np.mean(psnr)), "l1": float(np.mean(np.abs(pred - target))),
            "l2": float(np.mean((pred - target) ** 2)), "images": int(len(pred)),
            "binarise": binarise}


def mass_centres(maps) -> np.ndarray:
    """(N, 2) row, column of each map's mass centre, in pixel units where pixel (i, j) covers
    [i, i + 1) x [j, j + 1) (so the image's middle column line is W / 2); NaN for an all-zero
    map."""
    maps = np.asarray(maps, np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    mass = maps.sum((1, 2))
    rows = np.arange(maps.shape[1]) + 0.5
    cols = np.arange(maps.shape[2]) + 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (maps.sum(2) * rows).sum(1) / mass
        c = (maps.sum(1) * cols).sum(1) / mass
    return np.stack([np.where(mass > 0, r, np.nan), np.where(mass > 0, c, np.nan)], 1)


CONTROL_RULES = {"left_lung": "mass centre in the image-right half (patient convention)",
                 "right_lung": "mass centre in the image-left half",
                 "heart": "mass centre inside the heart mask's bounding box"}


def controllability(maps_by_prompt: dict, heart_masks, goal: float = 0.9) -> dict:
    """Whether prompted maps land where the prompt says, per test image: {"per_prompt": {region:
    {share, hits, n, rule}}, "overall" (share of all image x prompt pairs), "goal", "met" (every
    prompt's share >= goal)}. maps_by_prompt: {"left_lung" | "right_lung" | "heart": (N, H, W)};
    an all-zero map counts as a miss."""
    heart = np.asarray(heart_masks) > 0.5
    per, hits_all, n_all = {}, 0, 0
    for region, maps in maps_by_prompt.items():
        if region not in CONTROL_RULES:
            raise ValueError(f"unknown prompt region {region!r}; choose from "
                             f"{', '.join(CONTROL_RULES)}")
        maps = np.asarray(maps)
        centre = mass_centres(maps)
        half = maps.shape[2] / 2
        if region == "left_lung":
            ok = centre[:, 1] > half
        elif region == "right_lung":
            ok = centre[:, 1] < half
        else:
            if heart.shape != maps.shape:
                raise ValueError(f"heart masks {heart.shape} must match the maps {maps.shape}")
            ok = np.zeros(len(maps), bool)
            for i, mask in enumerate(heart):
                rr, cc = np.nonzero(mask)
                if len(rr) and np.all(np.isfinite(centre[i])):
                    ok[i] = (rr.min() <= centre[i, 0] <= rr.max() + 1) and \
                        (cc.min() <= centre[i, 1] <= cc.max() + 1)
        ok &= np.all(np.isfinite(centre), 1)
        per[region] = {"share": float(ok.mean()) if len(ok) else math.nan,
                       "hits": int(ok.sum()), "n": int(len(ok)), "rule": CONTROL_RULES[region]}
        hits_all += int(ok.sum())
        n_all += len(ok)
    return {"per_prompt": per, "overall": hits_all / n_all if n_all else math.nan,
            "goal": goal, "met": bool(per) and all(v["share"] >= goal for v in per.values())}
