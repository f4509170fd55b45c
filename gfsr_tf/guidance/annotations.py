"""Coarse, positive-only human annotations -> annotated segments.

Two sources: (a) a folder of mask images (any non-zero pixel = marked) matched to images by file
stem; (b) a JSON object {image stem: [segment ids]} of hand-picked SLIC segments (the paper's
"manually selected useful segments"). Unmarked areas are *not* negative.

Rule for masks: a segment is annotated when the marked fraction of its area reaches
`min_fraction` (default 0.5) - a rough region drawn over it - or, for scribbles, when it holds at
least one marked pixel. An annotation counts as a scribble when it is thin: fewer than half of its
marked pixels survive an erosion by a square of side ~1/16 of the image (odd, at least 3 px), i.e.
strokes narrower than ~1/16 of the image are scribbles.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
# Files an annotation folder may hold besides the masks (relevance.templates writes source.json).
NOT_ANNOTATIONS = {"source.json", "preview.png", "README.md", "README.txt"}


def is_scribble(marks: np.ndarray) -> bool:
    marks = (np.asarray(marks) > 0).astype(np.uint8)
    if not marks.any():
        return False
    side = max(3, min(marks.shape) // 16) | 1
    eroded = cv2.erode(marks, np.ones((side, side), np.uint8), borderType=cv2.BORDER_CONSTANT,
                       borderValue=0)
    return eroded.sum() < 0.5 * marks.sum()


def annotated_segments(segments: np.ndarray, marks: np.ndarray,
                       min_fraction: float = 0.5) -> np.ndarray:
    """(H, W) segment labels + (H, W) marks -> bool per segment label."""
    if segments.shape != marks.shape:
        raise ValueError(f"annotation shape {marks.shape} differs from the image's {segments.shape}")
    marked = np.asarray(marks) > 0
    n = int(segments.max()) + 1
    area = np.bincount(segments.ravel(), minlength=n)
    hits = np.bincount(segments.ravel(), weights=marked.ravel(), minlength=n)
    fraction = hits / np.maximum(area, 1)
    chosen = fraction >= min_fraction
    if is_scribble(marked):
        chosen |= hits >= 1
    return chosen & (area > 0)


def load_mask_folder(folder, names: list[str], shape) -> dict[int, np.ndarray]:
    """Annotation masks matched to `names` (image file names or stems) by stem.

    Returns {image index: bool (H, W)}. Masks of another size are resized (nearest neighbour)
    when the aspect ratio matches, else a clear error; so are unknown stems and unreadable files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"annotation folder not found: {folder}")
    index = {Path(n).stem: i for i, n in enumerate(names)}
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith(".") or path.name in NOT_ANNOTATIONS:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"not an image file in the annotation folder: {path}")
        if path.stem not in index:
            raise ValueError(f"annotation {path} matches no image (no image named {path.stem}.*)")
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise ValueError(f"cannot read annotation image: {path}")
        h, w = shape
        if mask.shape != (h, w):
            if abs(mask.shape[0] / mask.shape[1] - h / w) > 0.01:
                raise ValueError(f"annotation {path} is {mask.shape[1]}x{mask.shape[0]}, "
                                 f"the image is {w}x{h}: aspect ratios differ")
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        out[index[path.stem]] = mask > 0
    _check_not_empty(out, str(folder))
    return out


def load_segment_json(path, names: list[str]) -> dict[int, list[int]]:
    """{image stem: [segment ids]} -> {image index: [segment ids]}."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read segment annotations {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object {{image stem: [segment ids]}}")
    index = {Path(n).stem: i for i, n in enumerate(names)}
    out = {}
    for stem, ids in raw.items():
        if stem not in index:
            raise ValueError(f"{path}: annotation for {stem!r} matches no image")
        if not isinstance(ids, list) or not all(isinstance(s, int) for s in ids):
            raise ValueError(f"{path}: {stem!r} must map to a list of integer segment ids")
        out[index[stem]] = ids
    _check_not_empty(out, str(path))
    return out


def _check_not_empty(annotations: dict, source: str) -> None:
    if not any(np.any(v) if isinstance(v, np.ndarray) else len(v) for v in annotations.values()):
        raise ValueError(f"no marked pixels or segments in {source}: nothing to learn relevance from")
