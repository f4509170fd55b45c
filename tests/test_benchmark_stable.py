"""The embedded benchmark's bytes do not depend on library releases or on the CPU's SIMD paths,
and the drawing primitives behind it agree with independent implementations."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from gfsr_tf.config import BenchmarkConfig
from gfsr_tf.datasets import raster
from gfsr_tf.datasets.synthetic import (BENCHMARK_SHA256, benchmark_digest, make_split,
                                        paste_overlay)

ROOT = Path(__file__).resolve().parents[1]
# the script the docs name, loaded from its file (benchmarks/ is not a package)
_spec = importlib.util.spec_from_file_location("benchmark_bytes",
                                               ROOT / "benchmarks" / "benchmark_bytes.py")
benchmark_bytes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_bytes)


def test_benchmark_bytes_are_the_pinned_ones():
    assert benchmark_digest() == BENCHMARK_SHA256


def _numpy_sin_sum(env=None) -> str:
    code = ("import numpy as np; x = np.linspace(0, 100, 100001).astype(np.float32); "
            "print(repr(float(np.sin(x).astype(np.float64).sum())))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})}).stdout.strip()


def test_same_bytes_when_numpy_runs_its_baseline_simd_loops():
    """numpy's float32 sine (what the old renderer used) changes when its AVX2/AVX-512 loops are
    switched off; the benchmark's digest does not."""
    if _numpy_sin_sum() == _numpy_sin_sum(benchmark_bytes.BASELINE_SIMD):
        pytest.skip("this CPU/numpy has no dispatched SIMD loop that changes float32 sine")
    digest, _, _ = benchmark_bytes.digest_in(sys.executable, benchmark_bytes.BASELINE_SIMD)
    assert digest == BENCHMARK_SHA256


def test_the_benchmark_never_imports_opencv():
    code = ("import sys; from gfsr_tf.datasets.synthetic import benchmark_digest; "
            "benchmark_digest(32, 2); print('cv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "False"


@pytest.mark.slow
def test_same_bytes_under_older_numpy_and_scipy_in_a_throwaway_venv():
    """Needs the package index (or a mirror): skipped cleanly without it."""
    try:
        digest, numpy_version, _ = benchmark_bytes.digest_in_venv(
            ["numpy==2.1.3", "scipy==1.14.1"])
    except RuntimeError as exc:
        pytest.skip(f"no throw-away venv with older numpy/scipy: {exc}")
    assert numpy_version == "2.1.3"
    assert digest == BENCHMARK_SHA256


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
def test_gaussian_blur_equals_scipy(sigma):
    a = np.random.default_rng(0).random((23, 31))
    for ours, theirs in (("symmetric", "reflect"), ("reflect", "mirror"),
                         ("constant", "constant")):
        np.testing.assert_allclose(raster.gaussian_blur(a, sigma, mode=ours),
                                   ndimage.gaussian_filter(a, sigma, mode=theirs, truncate=4.0),
                                   atol=1e-12)


def test_disc_and_stroke_against_hand_counts():
    canvas = np.zeros((11, 11))
    raster.fill_disc(canvas, (5, 5), 3)
    assert canvas.sum() == 29          # lattice points with x^2 + y^2 <= 9 (Gauss circle, r=3)
    edge = np.zeros((5, 5))
    raster.fill_disc(edge, (0, 0), 2)  # a quarter of the r=2 disc (13 points) lies inside
    assert edge.sum() == 6
    line = raster.stroke((7, 9), [(1, 3), (7, 3)], width=2, antialias=False)
    # rows 2-4 (distance <= 1) x columns 1-7, plus the round caps' tips (3, 0) and (3, 8)
    assert line.sum() == 7 * 3 + 2
    soft = raster.stroke((7, 9), [(1, 3), (7, 3)], width=1)
    assert soft[3, 4] == 1.0 and soft[2, 4] == 0.0 and soft[3, 0] == 0.0
    half = raster.stroke((3, 3), [(1, 1), (1, 1)], width=1)   # a dot: coverage 1 - d
    assert half[1, 2] == 0.0 and half[1, 1] == 1.0
    with pytest.raises(ValueError, match="no glyph for 'Z'"):
        raster.draw_text((9, 9), "RZ", 0, 0, 5, 1)


def test_the_marker_is_larger_than_slic_merges_away():
    """The "R" must survive SLIC's connectivity step (segments under half the mean segment area
    are merged into a neighbour): OpenCV 5's faint 6-pixel glyph did not, and the propagated
    masks then gave the marker the background's relevance."""
    size, n_segments = 48, 50
    data = make_split(BenchmarkConfig(image_size=size), "train", 20)
    for i in np.flatnonzero(data.has_marker):
        drawn = data.images[i, ..., 0].astype(int) - data.twins[i, ..., 0]
        assert (drawn > 64).sum() >= 0.5 * size * size / n_segments


def test_overlays_on_non_square_images_stay_in_their_corner():
    images = np.zeros((2, 40, 90, 1), np.uint8)
    marker = paste_overlay(images, 0, "laterality")[..., 0] > 0
    text = paste_overlay(images, 0, "text")[..., 0] > 0
    for m in marker:
        ys, xs = np.nonzero(m)
        assert ys.max() < 40 // 2 and xs.max() < 90 // 4
    for t in text:
        ys, xs = np.nonzero(t)
        assert ys.max() < 40 // 2 and xs.min() > 90 * 3 // 4
