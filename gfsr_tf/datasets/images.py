"""Reading image files of any common format into the uint8 (N, H, W, C) arrays the library uses.

8- and 16-bit, grayscale, RGB and RGBA are handled explicitly: 16-bit images are scaled by their
own dtype range (65535 -> 255), RGBA is composited on black (transparent = background), and the
result is converted to the requested channel count (gray = ITU-R 601 luma of RGB).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# An image with a side below this holds no anatomy to classify or explain (a 1x1 PNG upsampled
# to the model's size is a constant image); loaders skip such files with their other unreadable
# ones, `gfsr explain` refuses them.
MIN_SIDE = 8


def read_image(path, channels: int = 1) -> np.ndarray:
    """One file -> uint8 (H, W, channels), channels 1 or 3. Raises ValueError naming the file
    when it cannot be decoded."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"cannot read image file: {path}")
    if raw.dtype == np.uint16:
        raw = (raw.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif raw.dtype != np.uint8:
        raise ValueError(f"{path}: unsupported pixel type {raw.dtype} (8- or 16-bit expected)")
    if min(raw.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{path}: image is {raw.shape[1]}x{raw.shape[0]} px, below the minimum "
                         f"of {MIN_SIDE} px per side")
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.shape[-1] == 4:  # BGRA: composite on black
        alpha = raw[..., 3:].astype(np.float32) / 255.0
        raw = (raw[..., :3].astype(np.float32) * alpha).round().astype(np.uint8)
    if raw.shape[-1] == 3:
        rgb = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        return rgb if channels == 3 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    return raw if channels == 1 else np.repeat(raw, 3, -1)


def image_files(inputs) -> list[Path]:
    """Files and folders (searched non-recursively for image suffixes) -> sorted image paths."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such image file or folder: {item}")
    if not paths:
        raise ValueError(f"no image files found in {', '.join(map(str, inputs))}")
    return paths


def read_resized(path, size: int | tuple[int, int], channels: int = 1) -> np.ndarray:
    """One file read and resized (area interpolation) -> uint8 (H, W, channels): what every
    loader, in memory or streamed, does to a file."""
    h, w = (size, size) if isinstance(size, int) else size
    image = read_image(path, channels)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, channels)


def load_images(paths, size: int | tuple[int, int], channels: int = 1) -> np.ndarray:
    """Read and resize (area interpolation) to size -> uint8 (N, H, W, channels)."""
    h, w = (size, size) if isinstance(size, int) else size
    out = np.empty((len(paths), h, w, channels), np.uint8)
    for i, path in enumerate(paths):
        out[i] = read_resized(path, (h, w), channels)
    return out
