"""Version-stable drawing for the embedded benchmark: blur, discs, strokes and a stroke font.

Why not OpenCV or scipy.ndimage: the benchmark's bytes are part of every published figure, and
they moved with library releases (OpenCV 5 renders `putText`, `GaussianBlur` and `circle`
differently from OpenCV 4; numpy's float32 SIMD `sin`/`cos`/`exp` differ in their last bits
between numpy builds and CPUs). Everything here is float64 arithmetic made only of IEEE
operations that are correctly rounded on every platform (+, -, *, /, sqrt, comparisons, and
integer indexing), applied in a fixed order; transcendental functions are evaluated by the C
library through `math` (glibc's are correctly rounded), never by numpy's SIMD loops. So the
same random draws give the same pixels under any numpy/OpenCV/scipy release and on any CPU;
`tests/test_benchmark_stable.py` checks it under other SIMD paths and other library versions.
"""
from __future__ import annotations

import math

import numpy as np

_SIN = np.frompyfunc(math.sin, 1, 1)
_EXP = np.frompyfunc(math.exp, 1, 1)


def sin(x) -> np.ndarray:
    """Element-wise sine through the C library (numpy's SIMD sine differs across builds/CPUs)."""
    return np.asarray(_SIN(np.asarray(x, np.float64)), np.float64)


def exp(x) -> np.ndarray:
    """Element-wise exp through the C library (see `sin`)."""
    return np.asarray(_EXP(np.asarray(x, np.float64)), np.float64)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised 1-D Gaussian weights of radius ceil(truncate * sigma), in float64."""
    sigma = max(float(sigma), 1e-3)
    radius = max(1, int(math.ceil(truncate * sigma)))
    w = np.array([math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)])
    total = 0.0
    for v in w:               # a fixed summation order (np.sum's pairwise order is not fixed)
        total += float(v)
    return w / total


def gaussian_blur(a: np.ndarray, sigma: float, mode: str = "symmetric") -> np.ndarray:
    """Separable Gaussian blur of a 2-D array in float64; border `mode` as in `np.pad`
    ("symmetric" = OpenCV's BORDER_REFLECT, "constant" = zeros). Each output pixel is the same
    fixed sequence of multiply-adds on every platform: a loop over kernel taps, not a
    convolution routine whose summation order depends on the library."""
    w = gaussian_kernel(sigma)
    r = len(w) // 2
    out = np.asarray(a, np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode=mode)
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for k, weight in enumerate(w):
            window = padded[k:k + n] if axis == 0 else padded[:, k:k + n]
            acc = acc + weight * window
        out = acc
    return out


def fill_disc(canvas: np.ndarray, centre_xy: tuple[int, int], radius: int, value=1.0) -> None:
    """Set the pixels whose integer distance to the (integer) centre is <= radius (exact)."""
    cx, cy = int(centre_xy[0]), int(centre_xy[1])
    h, w = canvas.shape
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius
    canvas[y0:y1, x0:x1][inside] = value


def segment_distance(shape: tuple[int, int], a, b) -> np.ndarray:
    """Distance (float64, H x W) from every pixel centre to the segment a-b ((x, y) in pixels)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    ax, ay = float(a[0]), float(a[1])
    dx, dy = float(b[0]) - ax, float(b[1]) - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        t = np.zeros(shape)
    else:
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / length2, 0.0, 1.0)
    ex, ey = xx - (ax + t * dx), yy - (ay + t * dy)
    return np.sqrt(ex * ex + ey * ey)


def stroke(shape: tuple[int, int], polyline, width: float, antialias: bool = True) -> np.ndarray:
    """A polyline of the given width (px) as an (H, W) float64 coverage in [0, 1]: anti-aliased
    (coverage falls linearly over one pixel at the edge) or hard (distance <= width / 2)."""
    out = np.zeros(shape)
    points = [tuple(p) for p in polyline]
    for a, b in zip(points[:-1], points[1:]):
        d = segment_distance(shape, a, b)
        cover = np.clip(width / 2 + 0.5 - d, 0.0, 1.0) if antialias else \
            (d <= width / 2).astype(np.float64)
        out = np.maximum(out, cover)
    return out


# A stroke font for the overlays the benchmark draws, in cap-height units (x right, y down,
# 0 = top of the capitals): a fixed definition in the source, so no font renderer is involved.
# Each letter: (advance width, [polylines]).
STROKE_FONT = {
    "R": (0.62, [[(0.0, 1.0), (0.0, 0.0), (0.38, 0.0), (0.52, 0.06), (0.58, 0.17), (0.58, 0.30),
                  (0.52, 0.42), (0.38, 0.48), (0.0, 0.48)],
                 [(0.30, 0.48), (0.60, 1.0)]]),
    "A": (0.70, [[(0.0, 1.0), (0.35, 0.0), (0.70, 1.0)], [(0.12, 0.66), (0.58, 0.66)]]),
    "P": (0.58, [[(0.0, 1.0), (0.0, 0.0), (0.38, 0.0), (0.52, 0.06), (0.58, 0.17), (0.58, 0.32),
                  (0.52, 0.43), (0.38, 0.50), (0.0, 0.50)]]),
}
LETTER_GAP = 0.22  # between letters, in cap heights


def text_width(text: str, height: float) -> float:
    """Width in px of `text` drawn with capitals `height` px tall (strokes not included)."""
    return height * (sum(STROKE_FONT[c][0] for c in text) + LETTER_GAP * (len(text) - 1))


def draw_text(shape: tuple[int, int], text: str, x: float, y_top: float, height: float,
              width: float) -> np.ndarray:
    """`text` in the stroke font, capitals `height` px tall, top-left corner of the first
    capital's outline at (x, y_top), strokes `width` px wide, anti-aliased: (H, W) in [0, 1]."""
    unknown = sorted(set(text) - set(STROKE_FONT))
    if unknown:
        raise ValueError(f"the stroke font has no glyph for {''.join(unknown)!r} "
                         f"(it has {''.join(sorted(STROKE_FONT))})")
    out = np.zeros(shape)
    pen = float(x)
    for char in text:
        advance, lines = STROKE_FONT[char]
        for line in lines:
            pts = [(pen + u * height, y_top + v * height) for u, v in line]
            out = np.maximum(out, stroke(shape, pts, width))
        pen += (advance + LETTER_GAP) * height
    return out
