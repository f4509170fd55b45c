"""Data loaders. Every one returns {split: ImageSet}; `load_dataset` picks one by kind or by the
path's layout, so the study pipeline has one way through the data."""
from __future__ import annotations

from pathlib import Path

from .base import ImageSet

# "gaze_simulation": the embedded eye-gaze simulation without a data dir (its EGD-CXR layout on
# disk with one)
DATASET_KINDS = ("benchmark", "kermany", "medmnist", "ham10000", "egd_cxr", "folders",
                 "pneumoniamnist_shortcut", "retinamnist_shortcut", "gaze_simulation")
# real images with the benchmark's planted marker and exact twins (datasets.real_shortcut)
SHORTCUT_KINDS = ("pneumoniamnist_shortcut", "retinamnist_shortcut")


def detect_kind(path) -> str:
    """The loader a path's layout calls for: a MedMNIST npz, an EGD-CXR folder (master_sheet.csv),
    HAM10000 (a metadata CSV), the Kermany layout, or generic class folders."""
    path = Path(path)
    if path.suffix == ".npz":
        return "medmnist"
    if not path.is_dir():
        raise FileNotFoundError(f"data directory not found: {path}")
    if next(path.rglob("master_sheet.csv"), None):
        return "egd_cxr"
    if next(path.rglob("HAM10000_metadata*.csv"), None):
        return "ham10000"
    for root in (path, path / "chest_xray"):
        if any((root / "train" / c).is_dir() for c in ("NORMAL", "PNEUMONIA")):
            return "kermany"  # (the loader names a missing class folder)
    return "folders"


def load_dataset(kind: str, path, size: int, *, val_fraction: float = 0.1, seed: int = 0,
                 skipped: list | None = None, stream_above_mb: float | None = None,
                 cache_dir=None, **gaze) -> dict[str, ImageSet]:
    """{train, val, test} from a real dataset on disk (kind "auto" detects it). `gaze`:
    heatmap options of the EGD-CXR loader (sigma_px, sigma_fraction, weighting, image_list),
    ignored by the other loaders. stream_above_mb / cache_dir: the class-folder loaders
    (kermany, folders) stream splits above that size from a disk cache
    (`datasets.streaming`); the others read into memory (HAM10000, EGD-CXR and MedMNIST fit)."""
    kind = detect_kind(path) if kind == "auto" else kind
    if kind == "medmnist":
        from .medmnist import load_medmnist
        return load_medmnist(path, size)
    common = dict(val_fraction=val_fraction, seed=seed, skipped=skipped)
    streaming = dict(stream_above_mb=stream_above_mb, cache_dir=cache_dir)
    if kind == "kermany":
        from .kermany import load_kermany
        return load_kermany(path, size, **common, **streaming)
    if kind == "ham10000":
        from .ham10000 import load_ham10000
        return load_ham10000(path, size, **common)
    if kind == "egd_cxr":
        from .egd_cxr import load_egd_cxr
        return load_egd_cxr(path, size, **common, **gaze)
    if kind == "folders":
        from .folders import load_class_folders
        return load_class_folders(path, size, **common, **streaming)
    raise ValueError(f"unknown dataset kind {kind!r}; choose auto or one of "
                     f"{', '.join(DATASET_KINDS[1:-1])}")


__all__ = ["ImageSet", "DATASET_KINDS", "detect_kind", "load_dataset"]
