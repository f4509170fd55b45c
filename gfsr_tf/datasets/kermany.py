"""Kermany chest X-ray layout: chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg (optionally val/).

Images are decoded as grayscale (RGB-stored files too) and resized to `size`; a stratified,
seeded, patient-grouped validation split is carved from train (the official val split has 16
images; if present it is merged into train first). Unreadable files are skipped, counted and
reported.
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import ImageSet
from .folders import load_class_folders

CLASSES = ("NORMAL", "PNEUMONIA")
_PATIENT = re.compile(r"(person\d+)", re.IGNORECASE)


def _find_root(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    for candidate in (data_dir, data_dir / "chest_xray"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise FileNotFoundError(f"{data_dir} is not in the Kermany layout: expected "
                            "chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg")


def patient_id(name: str) -> str:
    match = _PATIENT.search(name)
    return match.group(1).lower() if match else Path(name).stem


def load_kermany(data_dir, size: int = 128, *, val_fraction: float = 0.1, seed: int = 0,
                 skipped: list | None = None, stream_above_mb: float | None = None,
                 cache_dir=None) -> dict[str, ImageSet]:
    return load_class_folders(_find_root(Path(data_dir)), size, channels=1, classes=CLASSES,
                              class_names=("normal", "pneumonia"), group_of=patient_id,
                              val_fraction=val_fraction, seed=seed, skipped=skipped,
                              stream_above_mb=stream_above_mb, cache_dir=cache_dir)
