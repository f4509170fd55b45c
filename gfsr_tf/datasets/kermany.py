"""Kermany chest X-ray layout: chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg (optionally val/).

Images are decoded as grayscale and resized to `size`; a stratified, seeded, patient-grouped
validation split is carved from train (the official val split has 16 images; if present it is
merged into train first). Unreadable files are skipped, counted and reported.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from .base import ImageSet

log = logging.getLogger(__name__)
CLASSES = ("NORMAL", "PNEUMONIA")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_PATIENT = re.compile(r"(person\d+)", re.IGNORECASE)


def _find_root(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    for candidate in (data_dir, data_dir / "chest_xray"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise FileNotFoundError(f"{data_dir} is not in the Kermany layout: expected "
                            "chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg")


def _read_folder(split_dir: Path, size: int, skipped: list) -> tuple[list, list, list]:
    images, labels, names = [], [], []
    for label, cls in enumerate(CLASSES):
        folder = split_dir / cls
        if not folder.is_dir():
            raise FileNotFoundError(f"class folder missing: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"class folder has no images (.jpeg/.jpg/.png): {folder}")
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # RGB-stored files become gray
            if image is None:
                skipped.append(str(path))
                continue
            images.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
            labels.append(label)
            names.append(path.name)
    return images, labels, names


def _to_set(images, labels, names) -> ImageSet:
    return ImageSet(np.stack(images)[..., None], np.asarray(labels, np.int64),
                    ("normal", "pneumonia"), names=list(names))


def patient_id(name: str) -> str:
    match = _PATIENT.search(name)
    return match.group(1).lower() if match else Path(name).stem


def load_kermany(data_dir, size: int = 128, *, val_fraction: float = 0.1, seed: int = 0,
                 skipped: list | None = None) -> dict[str, ImageSet]:
    root = _find_root(Path(data_dir))
    skipped = [] if skipped is None else skipped
    train = list(zip(*_read_folder(root / "train", size, skipped)))
    if (root / "val").is_dir():
        train += list(zip(*_read_folder(root / "val", size, skipped)))
    test = _to_set(*_read_folder(root / "test", size, skipped))
    if skipped:
        log.warning("skipped %d unreadable image files, e.g. %s", len(skipped), skipped[0])
    # Patient-grouped, class-stratified validation split.
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(train), bool)
    for label in (0, 1):
        idx = [i for i, t in enumerate(train) if t[1] == label]
        patients = sorted({patient_id(train[i][2]) for i in idx})
        rng.shuffle(patients)
        chosen = set(patients[:max(1, int(round(val_fraction * len(patients))))])
        for i in idx:
            val_mask[i] = patient_id(train[i][2]) in chosen
    pick = lambda keep: _to_set(*zip(*[t for t, k in zip(train, keep) if k]))
    return {"train": pick(~val_mask), "val": pick(val_mask), "test": test}
