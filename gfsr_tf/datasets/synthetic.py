"""Embedded shortcut chest-X-ray benchmark.

Procedural chest-X-ray-like images with ground truth for everything the paper can only argue about:
pneumonia = patchy opacities inside the lung fields (with a lesion mask); shortcut = a bright "R"
laterality marker in the top-left corner whose presence is correlated with pneumonia in
train/val/test_correlated and independent of the label in test_decorrelated. Every image is also
rendered without the marker (its exact counterfactual twin: same random draws, only the glyph
differs) and with it (`marker_added`: the marker drawn on every image, the same glyph the image
would have had). Each image draws from its own generator seeded by (seed, split, index), so any image can
be regenerated alone and the data do not depend on the split sizes.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..config import BenchmarkConfig
from .base import ImageSet

SPLITS = ("train", "val", "test_correlated", "test_decorrelated")
_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), sigmaX=max(sigma, 1e-3), borderType=cv2.BORDER_REFLECT)


def _glyph(size: int, text: str, height_frac: float, rng: np.random.Generator,
           corner: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Render `text` into an empty canvas near `corner`; return canvas in [0,1] and its box."""
    canvas = np.zeros((size, size), np.uint8)  # putText draws on 8-bit images only
    font = cv2.FONT_HERSHEY_SIMPLEX
    target_h = max(5.0, height_frac * size)
    (_, h0), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = target_h / h0 * rng.uniform(0.9, 1.1)
    thickness = max(1, int(round(size / 48)))
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    margin = int(round(size * rng.uniform(0.03, 0.07)))
    y = margin + h
    x = margin if corner == "left" else size - margin - w
    cv2.putText(canvas, text, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
    box = (max(0, y - h - thickness), max(0, x - thickness),
           min(size, y + thickness + 1), min(size, x + w + thickness))
    return canvas.astype(np.float32) / 255.0, box


def render_case(size: int, pneumonia: bool, marker: bool, text: bool, opacity: float,
                seed, *, heart_scale: float = 1.0, haze: float = 0.0) -> dict:
    """Render one case. Returns image/twin (float [0,1]), lungs, lesions, marker box, and the
    anatomy (`lung_sides`: the image-left and image-right lung fields; `heart`; `mediastinum`).

    All random draws happen regardless of `marker`/`text`, so the twin (marker=False) of the same
    seed differs only where the glyph is drawn. heart_scale > 1 enlarges the cardiac silhouette
    and haze > 0 adds bilateral perihilar haze (the gaze simulation's congestive heart failure);
    the haze draws from its own stream, so the defaults render exactly what they always did.
    """
    rng = np.random.default_rng(seed)
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    yy = yy / (s - 1) * 2 - 1
    xx = xx / (s - 1) * 2 - 1

    # Thorax: rounded square (superellipse power 4).
    cx, cy = rng.normal(0, 0.03, 2)
    ax, ay = rng.uniform(0.72, 0.82), rng.uniform(0.80, 0.90)
    thorax = (((xx - cx) / ax) ** 4 + ((yy - cy) / ay) ** 4 <= 1).astype(np.float32)
    img = 0.08 + 0.47 * _blur(thorax, s / 40)

    # Lung fields: two tilted ellipses.
    lungs = np.zeros((s, s), np.float32)
    sides, hila = [], []
    for side in (-1, 1):
        lx = cx + side * rng.uniform(0.32, 0.38)
        ly = cy + rng.uniform(-0.08, 0.0)
        a, b = rng.uniform(0.21, 0.26), rng.uniform(0.44, 0.52)
        t = np.deg2rad(side * rng.uniform(4, 12))
        u = (xx - lx) * np.cos(t) + (yy - ly) * np.sin(t)
        v = -(xx - lx) * np.sin(t) + (yy - ly) * np.cos(t)
        sides.append(((u / a) ** 2 + (v / b) ** 2 <= 1).astype(np.float32))
        lungs = np.maximum(lungs, sides[-1])
        hila.append((lx - side * 0.45 * a, ly))    # the medial edge of the field
    soft_lungs = _blur(lungs, s / 64)
    img -= 0.38 * soft_lungs

    # Rib texture: faint curved stripes inside the lungs.
    freq, phase = rng.uniform(4.5, 6.0), rng.uniform(0, 2 * np.pi)
    ribs = np.sin(2 * np.pi * freq * (yy + 0.25 * xx ** 2) + phase)
    img += 0.04 * ribs * soft_lungs

    # Heart and mediastinum: brighter.
    hx, hy = cx + rng.uniform(0.0, 0.1), cy + rng.uniform(0.15, 0.3)
    heart = (((xx - hx) / (0.22 * heart_scale)) ** 2 + ((yy - hy) / (0.2 * heart_scale)) ** 2
             <= 1).astype(np.float32)
    mediastinum = ((np.abs(xx - cx) < 0.1) & (yy > cy - 0.7) & (yy < cy + 0.6)).astype(np.float32)
    img += 0.15 * _blur(np.maximum(heart, mediastinum) * (1 - lungs), s / 48)
    if heart_scale != 1.0:  # a large heart's silhouette shows over the lung fields too
        img += 0.12 * _blur(heart * lungs, s / 48)
    if haze > 0:
        haze_rng = np.random.default_rng([*np.atleast_1d(seed), 4242])
        field = np.zeros((s, s), np.float32)
        for hx_, hy_ in hila:
            r = haze_rng.uniform(0.16, 0.22)
            field += np.exp(-((xx - hx_) ** 2 + (yy - hy_ - haze_rng.uniform(0, 0.1)) ** 2)
                            / (2 * r ** 2))
        img += haze * np.clip(field, 0, 1) * soft_lungs

    # Pneumonia: 1-3 patchy opacities built from jittered blurred discs, clipped to the lungs.
    n_lesions = int(rng.integers(1, 4))
    inside = np.argwhere(lungs > 0)
    patch = np.zeros((s, s), np.float32)
    for _ in range(3):  # always draw the maximum number of lesion randoms (stable streams)
        centre = inside[rng.integers(len(inside))]
        discs = rng.normal(0, 0.05 * s, (4, 2)) + centre
        radii = rng.uniform(0.035, 0.07, 4) * s
        if _ < n_lesions:
            for (py, px), r in zip(discs, radii):
                cv2.circle(patch, (int(px), int(py)), max(1, int(r)), 1.0, -1)
    patch = _blur(patch, s / 40) * lungs
    lesions = patch > 0.3
    if pneumonia:
        img += opacity * patch

    # Global acquisition variation: gain/offset, low-frequency brightness, noise.
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.05, 0.05)
    gx, gy = rng.uniform(-0.05, 0.05, 2)
    noise = rng.normal(0, 0.02, (s, s)).astype(np.float32)
    img = img * gain + offset + gx * xx + gy * yy + noise

    glyph, box = _glyph(s, "R", 0.14, rng, "left")
    brightness = rng.uniform(0.85, 1.0)
    text_glyph, _ = _glyph(s, "AP", 0.09, rng, "right")
    twin = img.copy()
    if text:
        img = np.maximum(img, 0.8 * text_glyph)
        twin = np.maximum(twin, 0.8 * text_glyph)
    with_marker = np.maximum(twin, brightness * glyph)  # the marker-added counterfactual
    if marker:
        img = with_marker
    if not pneumonia:
        lesions = np.zeros_like(lesions)
    return {"image": np.clip(img, 0, 1), "twin": np.clip(twin, 0, 1),
            "with_marker": np.clip(with_marker, 0, 1), "lungs": lungs, "lesions": lesions,
            "marker_box": box, "lung_sides": sides, "heart": heart,
            "mediastinum": np.maximum(heart, mediastinum)}


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.round(a * 255).astype(np.uint8)


def make_split(config: BenchmarkConfig, split: str, n: int | None = None) -> ImageSet:
    """Generate one split of the benchmark (deterministic in config.seed)."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if n is None:
        n = {"train": config.n_train, "val": config.n_val}.get(split, config.n_test)
    split_rng = np.random.default_rng([config.seed, _SPLIT_IDS[split], 10_000])
    labels = split_rng.permutation(np.arange(n) % 2)
    decorrelated = split == "test_decorrelated"
    has_marker = np.zeros(n, bool)
    has_text = np.zeros(n, bool)
    for cls, rate in ((1, config.marker_rate_pneumonia), (0, config.marker_rate_normal)):
        idx = np.flatnonzero(labels == cls)
        rate = 0.5 if decorrelated else rate
        chosen = split_rng.choice(idx, int(round(rate * len(idx))), replace=False)
        has_marker[chosen] = True
        # The text overlay favours "normal": the mirror image of the marker's correlation.
        text_rate = 0.5 if decorrelated else (1 - rate)
        has_text[split_rng.choice(idx, int(round(text_rate * len(idx))), replace=False)] = True
    s = config.image_size
    images = np.empty((n, s, s, 1), np.uint8)
    twins = np.empty_like(images)
    added = np.empty_like(images)
    lungs = np.empty((n, s, s), np.float32)
    lesions = np.empty((n, s, s), bool)
    boxes = np.empty((n, 4), np.int32)
    for i in range(n):
        case = render_case(s, bool(labels[i]), bool(has_marker[i]),
                           config.text_overlay and bool(has_text[i]), config.lesion_opacity,
                           (config.seed, _SPLIT_IDS[split], i))
        images[i, ..., 0] = _to_uint8(case["image"])
        twins[i, ..., 0] = _to_uint8(case["twin"])
        added[i, ..., 0] = _to_uint8(case["with_marker"])
        lungs[i], lesions[i], boxes[i] = case["lungs"], case["lesions"], case["marker_box"]
    data = ImageSet(images, labels.astype(np.int64), ("normal", "pneumonia"), lungs=lungs,
                    lesions=lesions, twins=twins, has_marker=has_marker, marker_boxes=boxes,
                    names=[f"{split}_{i:05d}" for i in range(n)], marker_added=added)
    if config.second_finding:
        data = add_second_finding(data, config.lesion_opacity, (config.seed, _SPLIT_IDS[split]))
    return data


MULTILABEL_CLASSES = ("normal", "pneumonia", "basal_opacity")


def basal_opacity(lungs: np.ndarray, seed) -> np.ndarray:
    """A soft opacity (H, W) in [0, 1] in the lower third of one lung field (side drawn)."""
    rng = np.random.default_rng(seed)
    s = lungs.shape[0]
    half = np.zeros_like(lungs)
    side = int(rng.integers(2))
    cols = slice(0, s // 2) if side == 0 else slice(s // 2, s)
    half[:, cols] = lungs[:, cols]
    rows = np.flatnonzero(half.any(1))
    if len(rows) == 0:
        return half
    top, bottom = rows[0], rows[-1]
    base = np.zeros_like(lungs)
    base[int(bottom - (bottom - top) / 3):bottom + 1] = 1.0
    inside = np.argwhere(half * base > 0)
    blob = np.zeros_like(lungs)
    centre = inside[rng.integers(len(inside))]
    for (py, px), r in zip(rng.normal(0, 0.04 * s, (3, 2)) + centre,
                           rng.uniform(0.05, 0.08, 3) * s):
        cv2.circle(blob, (int(px), int(py)), max(1, int(r)), 1.0, -1)
    return _blur(blob, s / 48) * half


def add_second_finding(data: ImageSet, opacity: float, stream) -> ImageSet:
    """The multi-label benchmark: each image gets a basal opacity with probability 1/2 (drawn
    per image from `stream`, its own generator), in the image, its twin and its marker-added
    counterfactual alike. Classes (normal, pneumonia, basal_opacity); `label_sets` and
    `class_masks` (normal: empty; pneumonia: the lesions; basal_opacity: its mask > 0.3)."""
    n, s = len(data), data.images.shape[1]
    rng = np.random.default_rng([*stream, 20_251])
    present = rng.random(n) < 0.5
    masks = np.zeros((n, 3, s, s), bool)
    out = {k: getattr(data, k).copy() for k in ("images", "twins", "marker_added")}
    for i in np.flatnonzero(present):
        patch = basal_opacity((data.lungs[i] > 0.5).astype(np.float32), [*stream, 20_251, i])
        masks[i, 2] = patch > 0.3
        for key in out:
            pixels = out[key][i, ..., 0].astype(np.float32) / 255 + opacity * patch
            out[key][i, ..., 0] = _to_uint8(np.clip(pixels, 0, 1))
    pneumonia = data.labels == 1
    masks[:, 1] = data.lesions
    sets = np.stack([~pneumonia & ~present, pneumonia, present], 1).astype(np.int64)
    labels = np.where(pneumonia, 1, np.where(present, 2, 0)).astype(np.int64)
    return ImageSet(out["images"], labels, MULTILABEL_CLASSES, lungs=data.lungs,
                    lesions=data.lesions, twins=out["twins"], has_marker=data.has_marker,
                    marker_boxes=data.marker_boxes, names=data.names,
                    marker_added=out["marker_added"], label_sets=sets, class_masks=masks)


def make_benchmark(config: BenchmarkConfig) -> dict[str, ImageSet]:
    return {split: make_split(config, split) for split in SPLITS}


# pasted overlays: name -> (text, height as a fraction of the side, corner, brightness range)
OVERLAYS = {"laterality": ("R", 0.14, "left", (0.85, 1.0)),
            "text": ("AP", 0.09, "right", (0.8, 0.8))}


def paste_overlay(images: np.ndarray, seed: int = 0, kind: str = "laterality") -> np.ndarray:
    """Any images (N, H, W, C) uint8 with an overlay max-blended in: "laterality", the
    benchmark's "R" marker in the top-left corner (brightness 0.85-1 of full scale), or "text",
    its "AP" text overlay in the top-right corner. The marker-added counterfactual for data
    without twins. Seeded per image, so a rerun draws the same glyphs."""
    if kind not in OVERLAYS:
        raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, got {kind!r}")
    text, height, corner, (lo, hi) = OVERLAYS[kind]
    out = np.array(images, copy=True)
    size = images.shape[1]
    for i in range(len(out)):
        glyph, _ = _glyph(size, text, height, np.random.default_rng([seed, 77, i]), corner)
        glyph = cv2.resize(glyph, (images.shape[2], images.shape[1])) if images.shape[1] != \
            images.shape[2] else glyph
        brightness = np.random.default_rng([seed, 78, i]).uniform(lo, hi)
        out[i] = np.maximum(out[i], _to_uint8(brightness * glyph)[..., None])
    return out


def paste_marker(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """`paste_overlay` with the laterality "R" (the audit's "does my model react to an R?")."""
    return paste_overlay(images, seed, "laterality")


def simulate_scribbles(lungs: np.ndarray, seed: int = 0, strokes: int = 3) -> np.ndarray:
    """Coarse annotations a non-expert would draw: a few thick wobbly strokes roughly along each
    lung field, allowed to spill over the edge (they are imprecise, positive-only marks).

    lungs: (N, H, W) masks; returns uint8 (N, H, W) with 1 where marked.
    """
    rng = np.random.default_rng(seed)
    n, h, w = lungs.shape
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        n_parts, parts = cv2.connectedComponents((lungs[i] > 0).astype(np.uint8))
        for label in range(1, n_parts):
            ys, xs = np.nonzero(parts == label)
            if len(ys) < 4:
                continue
            for _ in range(rng.integers(1, strokes + 1)):
                t = np.linspace(0.15, 0.85, 6)
                y = np.quantile(ys, t) + rng.normal(0, 0.03 * h, 6)
                x = np.median(xs) + rng.normal(0, 0.06 * w, 6)
                pts = np.stack([x, y], 1).round().astype(np.int32)
                cv2.polylines(out[i], [pts], False, 1, max(1, int(round(h / 20))))
    return out
