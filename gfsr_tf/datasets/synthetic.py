"""Embedded shortcut chest-X-ray benchmark.

Procedural chest-X-ray-like images with ground truth for everything the paper can only argue about:
pneumonia = patchy opacities inside the lung fields (with a lesion mask); shortcut = a bright "R"
laterality marker in the top-left corner whose presence is correlated with pneumonia in
train/val/test_correlated and independent of the label in test_decorrelated. Every image is also
rendered without the marker (its exact counterfactual twin: same random draws, only the glyph
differs) and with it (`marker_added`: the marker drawn on every image, the same glyph the image
would have had). Each image draws from its own generator seeded by (seed, split, index), so any image can
be regenerated alone and the data do not depend on the split sizes.

Every pixel is drawn with `raster` (float64 IEEE arithmetic in a fixed order, C-library
transcendentals, a stroke font defined in the source), so the benchmark's bytes do not depend on
the OpenCV, numpy or scipy release or on the CPU (`BENCHMARK_SHA256` pins them; tests check it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
from scipy import ndimage

from ..config import BenchmarkConfig
from . import raster
from .base import ImageSet

SPLITS = ("train", "val", "test_correlated", "test_decorrelated")
_SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return raster.gaussian_blur(a, sigma, mode="symmetric")


def _sq(a):
    return a * a


def _glyph(shape, text: str, height_frac: float, rng: np.random.Generator,
           corner: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Draw `text` into an empty (H, W) canvas near `corner`; return the canvas in [0, 1] and the
    box (y0, x0, y1, x1) that holds every pixel it touched. Capitals are height_frac * H px tall
    (at least 5 px, +-10 %), strokes max(1.5, H / 36) px wide, anti-aliased; the margin to the
    image edge is 3-7 % of H. Two draws from `rng`, in this order: scale, margin."""
    h_img, w_img = (shape, shape) if np.isscalar(shape) else tuple(shape)
    height = max(5.0, height_frac * h_img) * rng.uniform(0.9, 1.1)
    width = max(1.5, h_img / 36)
    margin = int(round(h_img * rng.uniform(0.03, 0.07)))
    reach = width / 2 + 0.5                      # how far from the outline a pixel can be lit
    text_w = raster.text_width(text, height)
    y_top = margin + reach
    x = margin + reach if corner == "left" else w_img - margin - reach - text_w
    canvas = raster.draw_text((h_img, w_img), text, x, y_top, height, width)
    box = (max(0, math.floor(y_top - reach)), max(0, math.floor(x - reach)),
           min(h_img, math.ceil(y_top + height + reach) + 1),
           min(w_img, math.ceil(x + text_w + reach) + 1))
    return canvas, box


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
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    yy = yy / (s - 1) * 2 - 1
    xx = xx / (s - 1) * 2 - 1

    # Thorax: rounded square (superellipse power 4).
    cx, cy = rng.normal(0, 0.03, 2)
    ax, ay = rng.uniform(0.72, 0.82), rng.uniform(0.80, 0.90)
    thorax = (_sq(_sq((xx - cx) / ax)) + _sq(_sq((yy - cy) / ay)) <= 1).astype(np.float64)
    img = 0.08 + 0.47 * _blur(thorax, s / 40)

    # Lung fields: two tilted ellipses.
    lungs = np.zeros((s, s))
    sides, hila = [], []
    for side in (-1, 1):
        lx = cx + side * rng.uniform(0.32, 0.38)
        ly = cy + rng.uniform(-0.08, 0.0)
        a, b = rng.uniform(0.21, 0.26), rng.uniform(0.44, 0.52)
        t = math.radians(side * rng.uniform(4, 12))
        cos_t, sin_t = math.cos(t), math.sin(t)
        u = (xx - lx) * cos_t + (yy - ly) * sin_t
        v = -(xx - lx) * sin_t + (yy - ly) * cos_t
        sides.append((_sq(u / a) + _sq(v / b) <= 1).astype(np.float64))
        lungs = np.maximum(lungs, sides[-1])
        hila.append((lx - side * 0.45 * a, ly))    # the medial edge of the field
    soft_lungs = _blur(lungs, s / 64)
    img -= 0.38 * soft_lungs

    # Rib texture: faint curved stripes inside the lungs.
    freq, phase = rng.uniform(4.5, 6.0), rng.uniform(0, 2 * np.pi)
    ribs = raster.sin(2 * math.pi * freq * (yy + 0.25 * _sq(xx)) + phase)
    img += 0.04 * ribs * soft_lungs

    # Heart and mediastinum: brighter.
    hx, hy = cx + rng.uniform(0.0, 0.1), cy + rng.uniform(0.15, 0.3)
    heart = (_sq((xx - hx) / (0.22 * heart_scale)) + _sq((yy - hy) / (0.2 * heart_scale))
             <= 1).astype(np.float64)
    mediastinum = ((np.abs(xx - cx) < 0.1) & (yy > cy - 0.7) & (yy < cy + 0.6)).astype(np.float64)
    img += 0.15 * _blur(np.maximum(heart, mediastinum) * (1 - lungs), s / 48)
    if heart_scale != 1.0:  # a large heart's silhouette shows over the lung fields too
        img += 0.12 * _blur(heart * lungs, s / 48)
    if haze > 0:
        haze_rng = np.random.default_rng([*np.atleast_1d(seed), 4242])
        field = np.zeros((s, s))
        for hx_, hy_ in hila:
            r = haze_rng.uniform(0.16, 0.22)
            field += raster.exp(-(_sq(xx - hx_) + _sq(yy - hy_ - haze_rng.uniform(0, 0.1)))
                                / (2 * r * r))
        img += haze * np.clip(field, 0, 1) * soft_lungs

    # Pneumonia: 1-3 patchy opacities built from jittered blurred discs, clipped to the lungs.
    n_lesions = int(rng.integers(1, 4))
    inside = np.argwhere(lungs > 0)
    patch = np.zeros((s, s))
    for _ in range(3):  # always draw the maximum number of lesion randoms (stable streams)
        centre = inside[rng.integers(len(inside))]
        discs = rng.normal(0, 0.05 * s, (4, 2)) + centre
        radii = rng.uniform(0.035, 0.07, 4) * s
        if _ < n_lesions:
            for (py, px), r in zip(discs, radii):
                raster.fill_disc(patch, (int(px), int(py)), max(1, int(r)))
    patch = _blur(patch, s / 40) * lungs
    lesions = patch > 0.3
    if pneumonia:
        img += opacity * patch

    # Global acquisition variation: gain/offset, low-frequency brightness, noise.
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.05, 0.05)
    gx, gy = rng.uniform(-0.05, 0.05, 2)
    noise = rng.normal(0, 0.02, (s, s))
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
    lesion_removed = np.empty_like(images)
    for i in range(n):
        rest = (bool(has_marker[i]), config.text_overlay and bool(has_text[i]),
                config.lesion_opacity, (config.seed, _SPLIT_IDS[split], i))
        case = render_case(s, bool(labels[i]), *rest)
        images[i, ..., 0] = _to_uint8(case["image"])
        # every draw is made whether or not the lesions are drawn: the same case without them
        lesion_removed[i, ..., 0] = (_to_uint8(render_case(s, False, *rest)["image"])
                                     if labels[i] else images[i, ..., 0])
        twins[i, ..., 0] = _to_uint8(case["twin"])
        added[i, ..., 0] = _to_uint8(case["with_marker"])
        lungs[i], lesions[i], boxes[i] = case["lungs"], case["lesions"], case["marker_box"]
    data = ImageSet(images, labels.astype(np.int64), ("normal", "pneumonia"), lungs=lungs,
                    lesions=lesions, twins=twins, has_marker=has_marker, marker_boxes=boxes,
                    names=[f"{split}_{i:05d}" for i in range(n)], marker_added=added,
                    lesion_removed=lesion_removed)
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
        raster.fill_disc(blob, (int(px), int(py)), max(1, int(r)))
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
        patch = basal_opacity((data.lungs[i] > 0.5).astype(np.float64), [*stream, 20_251, i])
        masks[i, 2] = patch > 0.3
        for key in out:
            pixels = out[key][i, ..., 0].astype(np.float64) / 255 + opacity * patch
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
    for i in range(len(out)):
        glyph, _ = _glyph(images.shape[1:3], text, height, np.random.default_rng([seed, 77, i]),
                          corner)
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
    eight_connected = np.ones((3, 3), bool)
    width = max(1, int(round(h / 20)))
    for i in range(n):
        parts, n_parts = ndimage.label(lungs[i] > 0, structure=eight_connected)
        for label in range(1, n_parts + 1):
            ys, xs = np.nonzero(parts == label)   # raster order: ys already sorted
            if len(ys) < 4:
                continue
            for _ in range(rng.integers(1, strokes + 1)):
                y = _quantiles(ys, np.linspace(0.15, 0.85, 6)) + rng.normal(0, 0.03 * h, 6)
                x = float(np.median(xs)) + rng.normal(0, 0.06 * w, 6)
                pts = np.stack([x, y], 1).round()
                out[i] = np.maximum(out[i], raster.stroke((h, w), pts, width, antialias=False)
                                    .astype(np.uint8))
    return out


def _quantiles(sorted_values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles of sorted values, written out: np.quantile's
    interpolation formula has changed between numpy releases (last-bit differences)."""
    pos = q * (len(sorted_values) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(sorted_values) - 1)
    a, b = sorted_values[lo].astype(np.float64), sorted_values[hi].astype(np.float64)
    return a + (b - a) * (pos - lo)


# SHA-256 of `benchmark_digest()`; identical under the locked dependencies, the newest releases
# the ranges in setup.cfg allow, older numpy/scipy/OpenCV releases and numpy's baseline (no
# AVX2/AVX-512) code paths: `python benchmarks/benchmark_bytes.py --help`.
BENCHMARK_SHA256 = "427003e3a61c0e6cfc50800c5779713f43bbd410720d4d87ca1bd9e3a1749a9e"


def benchmark_digest(image_size: int = 48, n: int = 12) -> str:
    """SHA-256 over every array the embedded benchmark produces at a small size: each split's
    images, twins, marker-added counterfactuals, lung and lesion masks, marker boxes, labels and
    marker flags; the multi-label variant; the blurred lung masks the trainer uses as relevance
    targets (sigma 1 px); simulated scribbles; and pasted "R" markers and "AP" overlays on
    square and non-square images."""
    h = hashlib.sha256()

    def add(*arrays):
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())

    for seed in (0, 1):
        config = BenchmarkConfig(image_size=image_size, seed=seed, text_overlay=True)
        for split in SPLITS:
            d = make_split(config, split, n)
            add(d.images, d.twins, d.marker_added, d.lungs, d.lesions, d.marker_boxes,
                d.has_marker, d.labels)
        add(np.stack([raster.gaussian_blur(m, 1.0, mode="reflect") for m in d.lungs]))
        add(simulate_scribbles(d.lungs > 0.5, seed=seed))
        multi = make_split(dataclasses.replace(config, second_finding=True), "train", n)
        add(multi.images, multi.twins, multi.label_sets, multi.class_masks)
        add(paste_marker(d.twins, seed), paste_overlay(d.twins, seed, "text"),
            paste_marker(np.zeros((3, image_size, image_size + 17, 1), np.uint8), seed))
    return h.hexdigest()
