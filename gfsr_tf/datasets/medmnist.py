"""MedMNIST v2 npz files (PneumoniaMNIST, RetinaMNIST, DermaMNIST, DermaMNIST-C, ...), read with
numpy alone (the `medmnist` package pulls in torch).

Layout: `{flag}.npz` (28 px) or `{flag}_{64,128,224}.npz` with keys train_images, train_labels,
val_images, val_labels, test_images, test_labels; images (N, H, W) gray or (N, H, W, 3) RGB
uint8, labels (N, 1) ints. Multi-label sets (ChestMNIST: (N, 14)) are refused with a clear error.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .base import ImageSet

SPLITS = ("train", "val", "test")
CLASS_NAMES = {
    "pneumoniamnist": ("normal", "pneumonia"),
    "retinamnist": ("grade 0", "grade 1", "grade 2", "grade 3", "grade 4"),
    "dermamnist": ("actinic keratosis", "basal cell carcinoma", "benign keratosis",
                   "dermatofibroma", "melanoma", "melanocytic nevus", "vascular lesion"),
    "breastmnist": ("malignant", "normal or benign"),
}


def flag_of(path) -> str:
    """'retinamnist_128.npz' -> 'retinamnist'; DermaMNIST-C releases keep the dermamnist names."""
    stem = Path(path).stem.lower()
    return re.sub(r"_(28|64|128|224)$", "", stem).replace("dermamnist_c", "dermamnist")


def load_medmnist(path, size: int | None = None) -> dict[str, ImageSet]:
    """{train, val, test} ImageSets from a MedMNIST npz (official splits), optionally resized to
    `size` px (area interpolation down, bicubic up)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MedMNIST file not found: {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path} as an npz file: {exc}") from None
    with z:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")
                   if f"{s}_{k}" not in z.files]
        if missing:
            raise ValueError(f"{path}: missing keys {missing} (MedMNIST layout expected)")
        raw = {s: (z[f"{s}_images"], z[f"{s}_labels"]) for s in SPLITS}
    flag = flag_of(path)
    out = {}
    for split, (images, labels) in raw.items():
        if len(images) != len(labels):
            raise ValueError(f"{path}: {split} has {len(images)} images but {len(labels)} labels")
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise ValueError(f"{path}: multi-label targets {labels.shape} are not supported")
        labels = labels.reshape(-1).astype(np.int64)
        images = np.asarray(images, np.uint8)
        if images.ndim == 3:
            images = images[..., None]
        if size and images.shape[1] != size:
            interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_CUBIC
            images = np.stack([cv2.resize(im, (size, size), interpolation=interp)
                               .reshape(size, size, images.shape[-1]) for im in images])
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        names = CLASS_NAMES.get(flag) or tuple(f"class {c}" for c in range(max(2, n_classes)))
        if n_classes > len(names):
            raise ValueError(f"{path}: label {n_classes - 1} but {flag} has {len(names)} classes")
        out[split] = ImageSet(images, labels, names,
                              names=[f"{split}_{i:05d}" for i in range(len(labels))])
    return out
