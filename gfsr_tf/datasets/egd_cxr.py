"""EGD-CXR eye-gaze chest X-rays (Karargyris et al. 2021, PhysioNet egd-cxr 1.0.0) with the
MIMIC-CXR DICOMs they were read on.

Files under `root` (any nesting):
  master_sheet.csv   dicom_id, patient_id and one-hot class columns Normal, CHF, pneumonia
  fixations.csv      one row per fixation: DICOM_ID, X_ORIGINAL, Y_ORIGINAL (pixels of the
                     original DICOM), FPOGD (fixation duration, s) and, when present,
                     "Time (in secs)" (its start); lower-case x, y, duration, time work too
  <dicom_id>.dcm     the MIMIC-CXR DICOMs (read with pydicom)
  <dicom_id>/transcript.json  optional (audio_segmentation_transcripts/): the dictation,
                     {"time_stamped_text": [{"phrase", "begin_time", "end_time"}, ...]}
  <dicom_id>/{left_lung, right_lung, mediastanum}.png  optional anatomical masks (original
                     size; patient convention: the patient's left lung is on the image's right;
                     "mediastanum" is the dataset's spelling). heart = mediastinum minus its
                     top third.
Each image gets a static gaze heatmap (`gaze_heatmap`). EGD-CXR stores fixations that fell off
the image with negative coordinates (e.g. (-1, -1)): they are dropped and counted, never clipped
onto the corner (where laterality markers sit). Empty or non-numeric fixation cells are skipped
and counted. Split patient-level 80/10/10 (no patient in two splits), class-stratified, seeded.
Unreadable DICOMs are skipped, counted and reported; CSVs without the needed columns are errors.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
from tqdm.auto import tqdm
import numpy as np

from .base import ImageSet
from .ham10000 import read_csv_rows
from .splits import grouped_split

log = logging.getLogger(__name__)
CLASSES = ("Normal", "CHF", "pneumonia")
CLASS_NAMES = ("normal", "congestive heart failure", "pneumonia")
_FIXATION_COLUMNS = {"id": ("dicom_id",), "x": ("x_original", "x"), "y": ("y_original", "y"),
                     "duration": ("fpogd", "duration")}
_TIME_COLUMNS = ("time (in secs)", "time")
REGION_FILES = {"left_lung": "left_lung.png", "right_lung": "right_lung.png",
                "mediastinum": "mediastanum.png"}
WEIGHTINGS = ("duration", "count")


def on_image(xs, ys, durations, original_shape) -> np.ndarray:
    """(k,) bool: the fixations a heatmap keeps - finite, and inside the original image."""
    h, w = original_shape
    finite = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(durations)
    return finite & (xs >= 0) & (ys >= 0) & (xs < w) & (ys < h)


def gaze_heatmap(xs, ys, durations, original_shape, size: int,
                 sigma_fraction: float = 0.05, *, sigma_px: float | None = None,
                 weighting: str = "duration", counts: dict | None = None) -> np.ndarray:
    """Fixations (x, y in original pixels, durations in s) -> (size, size) float32 in [0, 1].

    Each kept fixation adds its duration ("duration") or 1 ("count", the reference tool) at its
    pixel; the sum is Gaussian-smoothed and max-normalised. sigma: `sigma_px` original pixels
    (the reference uses 150; anisotropic after resizing a non-square image: sigma_px * size / w
    across, * size / h down) or, without it, sigma_fraction x size. Off-image fixations
    (negative or beyond the original size) and non-finite ones are dropped; `counts` (a dict)
    receives how many ("off_image", "non_finite"). No fixations kept -> all zeros.
    """
    xs, ys, durations = (np.asarray(v, np.float64).ravel() for v in (xs, ys, durations))
    if not len(xs) == len(ys) == len(durations):
        raise ValueError(f"xs, ys and durations must have the same length, got {len(xs)}, "
                         f"{len(ys)} and {len(durations)}")
    if sigma_px is not None and not sigma_px > 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    if sigma_px is None and not sigma_fraction > 0:
        raise ValueError(f"sigma_fraction must be > 0, got {sigma_fraction}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    finite = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(durations)
    if np.any(durations[finite] < 0):
        raise ValueError(f"durations must be >= 0, got {durations[finite].min()}")
    h, w = original_shape
    inside = on_image(xs, ys, durations, original_shape)
    if counts is not None:
        counts["non_finite"] = counts.get("non_finite", 0) + int(np.sum(~finite))
        counts["off_image"] = counts.get("off_image", 0) + int(np.sum(finite & ~inside))
    weights = durations[inside] if weighting == "duration" else np.ones(int(inside.sum()))
    heat = np.zeros((size, size), np.float64)
    cols = np.minimum((xs[inside] * size / w).astype(int), size - 1)   # pixel binning
    rows = np.minimum((ys[inside] * size / h).astype(int), size - 1)
    np.add.at(heat, (rows, cols), weights)
    if sigma_px is not None:
        sx, sy = sigma_px * size / w, sigma_px * size / h
    else:
        sx = sy = sigma_fraction * size
    heat = cv2.GaussianBlur(heat, (0, 0), sigmaX=max(sx, 0.3), sigmaY=max(sy, 0.3),
                            borderType=cv2.BORDER_CONSTANT)
    peak = heat.max()
    return (heat / peak if peak > 0 else heat).astype(np.float32)


def read_dicom(path) -> np.ndarray:
    """A DICOM -> uint8 (H, W) with the VOI window applied and MONOCHROME1 inverted."""
    import pydicom
    from pydicom.pixels import apply_voi_lut
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for broken files
        raise ValueError(f"cannot read DICOM {path}: {exc}") from None
    if pixels.ndim != 2:
        raise ValueError(f"{path}: expected one grayscale frame, got pixel array {pixels.shape}")
    if "WindowCenter" in ds:
        pixels = apply_voi_lut(pixels, ds).astype(np.float64)
    lo, hi = pixels.min(), pixels.max()
    pixels = (pixels - lo) / (hi - lo) if hi > lo else np.zeros_like(pixels)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = 1.0 - pixels
    return (pixels * 255).round().astype(np.uint8)


def _one_file(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    if not found:
        raise FileNotFoundError(f"{name} not found under {root}")
    return found[0]


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _fixations(path: Path) -> dict[str, np.ndarray]:
    """{dicom_id: (k, 4) x, y, duration, time}; cells that are empty or not numbers become NaN
    (the fixation is dropped and counted once, as "non_finite", by `gaze_heatmap`)."""
    rows = read_csv_rows(path, ())
    columns = set(rows[0]) if rows else set()
    pick = {}
    for key, options in _FIXATION_COLUMNS.items():
        match = [c for c in options if c in columns]
        if not match:
            raise ValueError(f"{path}: missing a {key} column (one of {list(options)})")
        pick[key] = match[0]
    time_column = next((c for c in _TIME_COLUMNS if c in columns), None)
    out: dict[str, list] = {}
    for r in rows:
        values = [_number(r[pick[k]]) for k in ("x", "y", "duration")]
        values.append(_number(r[time_column]) if time_column else float("nan"))
        out.setdefault(r[pick["id"]], []).append(values)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def read_transcript(path: Path) -> list[tuple[str, float]]:
    """[(sentence, end time s)] from an EGD-CXR transcript.json."""
    try:
        data = json.loads(Path(path).read_text())
        return [(str(t["phrase"]), float(t["end_time"])) for t in data["time_stamped_text"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read transcript {path}: {exc}") from None


def heart_from_mediastinum(mediastinum: np.ndarray) -> np.ndarray:
    """The heart: the mediastinum mask minus its top third (by the mask's own row extent)."""
    rows = np.flatnonzero(mediastinum.any(axis=1))
    heart = mediastinum.copy()
    if len(rows):
        cut = rows[0] + (rows[-1] - rows[0] + 1) // 3
        heart[:cut] = 0
    return heart


def _regions(folder: Path | None, size: int) -> dict[str, np.ndarray] | None:
    if folder is None or not all((folder / f).exists() for f in REGION_FILES.values()):
        return None
    masks = {}
    for name, file in REGION_FILES.items():
        mask = cv2.imread(str(folder / file), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise ValueError(f"cannot read mask {folder / file}")
        masks[name] = mask > 127
    masks["heart"] = heart_from_mediastinum(masks["mediastinum"])   # at original resolution
    return {k: cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
            for k, m in masks.items()}


def read_image_list(image_list) -> set[str]:
    """dicom_ids from a list, or a text/CSV file (one id per line, or a dicom_id column)."""
    if not isinstance(image_list, (str, Path)):
        return {str(i) for i in image_list}
    path = Path(image_list)
    if not path.exists():
        raise FileNotFoundError(f"image list not found: {path}")
    lines = [l.strip() for l in path.read_text().splitlines() if l.strip()]
    if lines and "dicom_id" in lines[0].lower().split(","):
        return {r["dicom_id"] for r in read_csv_rows(path, ("dicom_id",))}
    return set(lines)


def load_egd_cxr(root, size: int = 224, *, sigma_fraction: float = 0.05,
                 sigma_px: float | None = None, weighting: str = "duration",
                 image_list=None, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0, skipped: list | None = None,
                 counts: dict | None = None,
                 warnings: list | None = None) -> dict[str, ImageSet]:
    """{train, val, test} ImageSets (gray, 3 classes) with `gaze` heatmaps (see `gaze_heatmap`
    for sigma and weighting), the kept fixations, and - where the dataset has them - the
    transcripts and anatomical `regions`. image_list: only these dicom_ids (a list or a file,
    e.g. the 1,017 images of Watanabe et al.). `counts` receives the dropped fixations
    ("off_image", "non_finite": an empty or non-numeric x, y or duration); `warnings` (a list,
    the report's) receives a line about them and about images left with no usable fixation -
    an all-zero gaze map, which GFSR and the gaze U-Net would train towards. A ValueError when
    no image has a usable fixation."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    skipped = [] if skipped is None else skipped
    counts = {} if counts is None else counts
    sheet = _one_file(root, "master_sheet.csv")
    rows = read_csv_rows(sheet, ("dicom_id", "patient_id") + tuple(c.lower() for c in CLASSES))
    if image_list is not None:
        wanted = read_image_list(image_list)
        rows = [r for r in rows if r["dicom_id"] in wanted]
        if not rows:
            raise ValueError(f"none of the {len(wanted)} listed images is in {sheet}")
    fixations_csv = _one_file(root, "fixations.csv")
    fixations = _fixations(fixations_csv)
    dicoms = {p.stem: p for p in root.rglob("*.dcm")}
    transcripts = {p.parent.name: p for p in root.rglob("transcript.json")}
    images, gaze, labels, names, patients, kept, texts, regions = [], [], [], [], [], [], [], []
    shapes = []
    unlabelled = 0
    for row in tqdm(rows, desc="reading EGD-CXR DICOMs", leave=False, disable=len(rows) < 200):
        hot = [float(row[c.lower()] or 0) > 0 for c in CLASSES]
        if sum(hot) != 1:
            unlabelled += 1
            continue
        path = dicoms.get(row["dicom_id"])
        if path is None:
            raise FileNotFoundError(f"DICOM for {row['dicom_id']} (listed in {sheet}) is not "
                                    f"under {root}")
        try:
            pixels = read_dicom(path)
        except ValueError:
            skipped.append(str(path))
            continue
        fx = fixations.get(row["dicom_id"], np.zeros((0, 4)))
        gaze.append(gaze_heatmap(fx[:, 0], fx[:, 1], fx[:, 2], pixels.shape, size,
                                 sigma_fraction, sigma_px=sigma_px, weighting=weighting,
                                 counts=counts))
        kept.append(fx[on_image(fx[:, 0], fx[:, 1], fx[:, 2], pixels.shape)])
        images.append(cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA))
        shapes.append(pixels.shape)
        transcript = transcripts.get(row["dicom_id"])
        texts.append(read_transcript(transcript) if transcript else [])
        regions.append(_regions(transcript.parent if transcript else None, size))
        labels.append(hot.index(True))
        names.append(row["dicom_id"])
        patients.append(row["patient_id"])
    if skipped:
        log.warning("skipped %d unreadable DICOMs, e.g. %s", len(skipped), skipped[0])
    if unlabelled:
        log.warning("%d rows of %s have not exactly one of %s set; left out",
                    unlabelled, sheet, ", ".join(CLASSES))
    if not images:
        raise ValueError(f"no readable, labelled images under {root}")
    dropped = {k: v for k, v in counts.items() if v}
    without_gaze = [n for n, g in zip(names, gaze) if not g.max() > 0]
    if len(without_gaze) == len(images):
        raise ValueError(f"no usable fixation for any of the {len(images)} images in "
                         f"{fixations_csv} (dropped: {dropped or 'none'}): every gaze heatmap "
                         "would be all zero")
    notes = []
    if dropped:
        notes.append(f"EGD-CXR fixations dropped (off the image or with an empty or "
                     f"non-numeric x, y or duration): {dropped}")
    if without_gaze:
        notes.append(f"{len(without_gaze)} of {len(images)} images have no usable fixation; "
                     f"their gaze maps are all zero (e.g. {without_gaze[0]})")
    for note in notes:
        log.warning(note)
    if warnings is not None:
        warnings.extend(notes)
    region_set = None
    if all(r is not None for r in regions):
        region_set = {k: np.stack([r[k] for r in regions]) for k in regions[0]}
    data = ImageSet(np.stack(images)[..., None], np.asarray(labels, np.int64), CLASS_NAMES,
                    gaze=np.stack(gaze), names=names, regions=region_set, fixations=kept,
                    transcripts=texts, original_shapes=np.asarray(shapes, np.int64))
    parts = grouped_split(labels, patients, (1 - val_fraction - test_fraction, val_fraction,
                                             test_fraction), seed)
    return dict(zip(("train", "val", "test"), (data.subset(p) for p in parts)))
