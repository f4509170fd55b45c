"""SLIC superpixels (scikit-image) per image."""
from __future__ import annotations

import numpy as np
from skimage.segmentation import slic

def slic_segments(images: np.ndarray, n_segments: int = 50, compactness: float = 0.2,
                  progress: bool = False, min_size_factor: float = 0.5) -> np.ndarray:
    """uint8 (N, H, W, C) images -> int32 (N, H, W) segment labels starting at 0 per image.
    Grayscale images are segmented as a single channel."""
    from tqdm.auto import tqdm
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got {images.shape}")
    out = np.empty(images.shape[:3], np.int32)
    for i in tqdm(range(len(images)), desc="SLIC", disable=not progress, leave=False):
        img = images[i].astype(np.float32) / 255.0
        gray = img.shape[-1] == 1
        out[i] = slic(img[..., 0] if gray else img, n_segments=n_segments,
                      compactness=compactness, start_label=0, min_size_factor=min_size_factor,
                      channel_axis=None if gray else -1)
    return out
