"""Real images with a planted shortcut: the embedded benchmark's marker design on MedMNIST files.

`pneumoniamnist_shortcut` (PneumoniaMNIST: normal vs pneumonia) and `retinamnist_shortcut`
(RetinaMNIST: DR grade 0-1 vs grade 2-4, the binary split the shortcut audit's single-logit
definitions need) read the official npz splits, resize them to the study's size (OpenCV bicubic
when upsampling - 28 px files at 64 px are a 2.3x upsampling, not comparable with 128-px Kermany
runs - area when shrinking) and paste the benchmark's laterality "R" (the same stroke glyph,
size, corner and brightness range as `synthetic.render_case`; optionally its "AP" text overlay,
which favours the other class) into

  train, val          class-balanced subsamples of the official splits (n_train / n_val of the
                      study's BenchmarkConfig, half per class, seeded), the marker on
                      marker_rate_pneumonia of class-1 and marker_rate_normal of class-0 images;
  test_correlated     all official test images, the same rates;
  test_decorrelated   all official test images again, with their own draw: the marker on half
                      of each class;
  test                all official test images without any overlay (the unbiased split, beside
                      the published MedMNIST numbers).

Every marked split carries exact counterfactuals: `twins` (the image without the marker) and
`marker_added` (with it), which differ from each other only inside `marker_boxes` (the glyph is
max-blended into the image and touches no pixel outside its box), `has_marker` per image, and no
lung or lesion masks (real data: GFSR's masks are propagated from template annotations).
"""
from __future__ import annotations

import numpy as np

from .base import ImageSet
from .medmnist import flag_of, load_medmnist
from .synthetic import OVERLAYS, _glyph, _to_uint8

KINDS = {
    # kind: (MedMNIST flag, class names of the binary task, how to map the file's labels)
    "pneumoniamnist_shortcut": ("pneumoniamnist", ("normal", "pneumonia"), lambda y: y),
    "retinamnist_shortcut": ("retinamnist", ("grade 0-1", "grade 2-4"),
                             lambda y: (y >= 2).astype(np.int64)),
}
# the template annotations GFSR's masks are propagated from (guidance.templates)
TEMPLATE_OF = {"pneumoniamnist_shortcut": "lung_fields", "retinamnist_shortcut": "fundus_disc"}
# stream ids, so that every split draws its own glyphs and marker assignments
_STREAMS = {"train": 1, "val": 2, "test_correlated": 3, "test_decorrelated": 4}


def balanced_subsample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of n images, half from each class (all of a class that has fewer)."""
    picks = []
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        picks.append(rng.choice(idx, min(len(idx), n // 2), replace=False))
    return np.sort(np.concatenate(picks))


def marker_assignment(labels: np.ndarray, rate_1: float, rate_0: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Exactly round(rate x class size) marked images per class, drawn without replacement."""
    marked = np.zeros(len(labels), bool)
    for c, rate in ((1, rate_1), (0, rate_0)):
        idx = np.flatnonzero(labels == c)
        marked[rng.choice(idx, int(round(rate * len(idx))), replace=False)] = True
    return marked


def plant(images: np.ndarray, labels: np.ndarray, marked: np.ndarray, names: list[str],
          class_names, seed, text_overlay: bool = False) -> ImageSet:
    """The split with the "R" on the `marked` images and both counterfactuals for every image.
    With `text_overlay`, the "AP" overlay sits on the images of the other assignment (the
    mirror image of the marker's correlation, as in the benchmark) in twins and images alike."""
    text, height, corner, (lo, hi) = OVERLAYS["laterality"]
    ap_text, ap_height, ap_corner, (ap_lo, _) = OVERLAYS["text"]
    s = images.shape[1:3]
    twins = np.array(images, copy=True)
    added = np.empty_like(twins)
    boxes = np.empty((len(images), 4), np.int32)
    for i in range(len(images)):
        rng = np.random.default_rng([*seed, i])
        glyph, boxes[i] = _glyph(s, text, height, rng, corner)
        brightness = rng.uniform(lo, hi)
        if text_overlay and not marked[i]:
            ap, _ = _glyph(s, ap_text, ap_height, rng, ap_corner)
            twins[i] = np.maximum(twins[i], _to_uint8(ap_lo * ap)[..., None])
        added[i] = np.maximum(twins[i], _to_uint8(brightness * glyph)[..., None])
    shown = np.where(marked[:, None, None, None], added, twins)
    return ImageSet(shown, labels, class_names, twins=twins, marker_added=added,
                    has_marker=marked.copy(), marker_boxes=boxes, names=names)


def load_real_shortcut(kind: str, path, benchmark, seed: int = 0,
                       test_limit: int | None = None) -> dict[str, ImageSet]:
    """{train, val, test_correlated, test_decorrelated, test} for `kind` (see the module
    docstring); `benchmark` (a BenchmarkConfig) gives the size, the subsample sizes, the marker
    rates and the text overlay. `test_limit` (smoke runs only): a class-balanced subset of that
    many official test images, the same in the three test splits."""
    if kind not in KINDS:
        raise ValueError(f"unknown real shortcut dataset {kind!r}; choose one of "
                         f"{', '.join(KINDS)}")
    flag, class_names, binary = KINDS[kind]
    if flag_of(path) != flag:
        raise ValueError(f"{kind} reads {flag}.npz (or {flag}_<size>.npz), got {path}")
    raw = load_medmnist(path, benchmark.image_size)
    rng = np.random.default_rng([seed, 4242])
    if test_limit is not None:
        keep = balanced_subsample(binary(raw["test"].labels), test_limit, rng)
        raw["test"] = raw["test"].subset(keep)
    out = {}
    for split, source, n in (("train", "train", benchmark.n_train),
                             ("val", "val", benchmark.n_val),
                             ("test_correlated", "test", None),
                             ("test_decorrelated", "test", None)):
        data = raw[source]
        labels = binary(data.labels)
        keep = np.arange(len(labels)) if n is None else balanced_subsample(labels, n, rng)
        decorrelated = split == "test_decorrelated"
        marked = marker_assignment(labels[keep], 0.5 if decorrelated else
                                   benchmark.marker_rate_pneumonia,
                                   0.5 if decorrelated else benchmark.marker_rate_normal, rng)
        out[split] = plant(data.images[keep], labels[keep], marked,
                           [data.names[i] for i in keep], class_names,
                           (seed, _STREAMS[split]), benchmark.text_overlay)
    test = raw["test"]
    out["test"] = ImageSet(test.images, binary(test.labels), class_names, names=test.names)
    return out

