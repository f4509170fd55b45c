"""Template annotations: the coarse regions a non-expert would mark, drawn by rule.

GFSR needs a few annotated images per class. Where no clinician's marks exist, these templates
stand in for them - and every report that uses them says so ("template annotations, not a
clinician's"): lung fields for chest X-rays (two ellipses where the lungs sit on a PA film),
the illuminated disc for fundus photographs, the dark central blob for dermoscopy.
`write_template_annotations` writes them in the annotation-folder format
(`relevance.load_mask_folder`: one PNG per annotated image, named by its stem) plus
`source.json` that records how they were made.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

TEMPLATES = ("lung_fields", "fundus_disc", "central_lesion")
SOURCE_FILE = "source.json"


def lung_field_template(shape) -> np.ndarray:
    """Two upright ellipses over the typical lung fields of a PA chest X-ray (bool (H, W))."""
    h, w = shape
    yy, xx = (np.mgrid[:h, :w] + 0.5) / np.array([h, w])[:, None, None]  # pixel centres
    lungs = np.zeros((h, w), bool)
    for cx in (0.3, 0.7):
        lungs |= ((yy - 0.48) / 0.3) ** 2 + ((xx - cx) / 0.15) ** 2 <= 1
    return lungs


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    return image.mean(-1) if image.ndim == 3 else image


def fundus_disc_template(image: np.ndarray, shrink: float = 0.85) -> np.ndarray:
    """A disc over the illuminated fundus: centred on its Otsu foreground, radius `shrink` x
    that foreground's equivalent radius (stays inside the rim)."""
    from ..metrics.robustness import fundus_centre
    from skimage.filters import threshold_otsu
    gray = _gray(image)
    h, w = gray.shape
    area = float((gray > threshold_otsu(gray)).sum()) if gray.max() > gray.min() else h * w
    cy, cx = fundus_centre(image)
    radius = shrink * np.sqrt(area / np.pi)
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - cy, xx - cx) <= radius


def central_lesion_template(image: np.ndarray) -> np.ndarray:
    """Dermoscopy: the darker-than-Otsu connected region nearest the image centre, filled
    (falls back to a central ellipse over half the image when nothing dark is found)."""
    from skimage.filters import threshold_otsu
    from scipy import ndimage
    gray = _gray(image)
    h, w = gray.shape
    gray = cv2.GaussianBlur(gray, (0, 0), max(1.0, 0.01 * min(h, w)))  # ignore hair and pores
    dark = gray < threshold_otsu(gray) if gray.max() > gray.min() else np.zeros((h, w), bool)
    labels, n = ndimage.label(dark)
    if n:
        yy, xx = np.mgrid[:h, :w]
        centre_dist = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
        sizes = ndimage.sum(dark, labels, range(1, n + 1))
        dists = ndimage.minimum(centre_dist, labels, range(1, n + 1))
        # the component touching the centre most closely, among those of a sensible size
        ok = [i for i in range(n) if sizes[i] >= 0.01 * h * w] or list(range(n))
        best = min(ok, key=lambda i: dists[i]) + 1
        return ndimage.binary_fill_holes(labels == best)
    yy, xx = (np.mgrid[:h, :w] + 0.5) / np.array([h, w])[:, None, None]  # pixel centres
    return ((yy - 0.5) / 0.35) ** 2 + ((xx - 0.5) / 0.35) ** 2 <= 1


def template_mask(kind: str, image: np.ndarray) -> np.ndarray:
    if kind == "lung_fields":
        return lung_field_template(np.asarray(image).shape[:2])
    if kind == "fundus_disc":
        return fundus_disc_template(image)
    if kind == "central_lesion":
        return central_lesion_template(image)
    raise ValueError(f"unknown template {kind!r}; choose one of {', '.join(TEMPLATES)}")


def write_template_annotations(images: np.ndarray, labels: np.ndarray, names: list[str],
                               kind: str, out_dir, per_class: int = 5) -> Path:
    """Template annotations for the first `per_class` images of each class (in split order),
    written as `<stem>.png` (255 = marked) plus `source.json`. Returns out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    chosen = [int(i) for c in np.unique(labels) for i in np.flatnonzero(labels == c)[:per_class]]
    for i in chosen:
        mask = template_mask(kind, images[i] if images.shape[-1] == 3 else images[i, ..., 0])
        cv2.imwrite(str(out_dir / f"{Path(names[i]).stem}.png"), mask.astype(np.uint8) * 255)
    (out_dir / SOURCE_FILE).write_text(json.dumps({
        "annotator": "template",
        "template": kind,
        "note": "template annotations drawn by rule (gfsr_tf.guidance.templates), not a "
                "clinician's",
        "per_class": per_class, "images": [Path(names[i]).stem for i in chosen]}, indent=2))
    return out_dir


def annotation_source(folder) -> dict:
    """The folder's source.json ({} when absent: annotations from a person)."""
    path = Path(folder) / SOURCE_FILE
    return json.loads(path.read_text()) if Path(folder).is_dir() and path.exists() else {}
