"""Segment embeddings: a ResNet50 feature map max-pooled over each segment's footprint."""
from __future__ import annotations

import keras
import numpy as np

from ..preprocessing import preprocess

from ..config import ConceptConfig

DEFAULT_LAYER = ConceptConfig.layer  # why this layer: see ConceptConfig


def feature_extractor(input_shape, layer: str = DEFAULT_LAYER, weights="auto",
                      warnings: list | None = None, seed: int = 0) -> keras.Model:
    """ResNet50 features at `layer`. weights: "auto" | "imagenet" | None | a ResNet50 weights
    file | a trained `.keras` classifier whose backbone is used (domain-trained features)."""
    from ..models.classifier import build_backbone
    if isinstance(weights, str) and weights.endswith(".keras"):
        backbone = keras.models.load_model(weights)
    else:
        keras.utils.set_random_seed(seed)  # a random-init fallback must be reproducible
        backbone = build_backbone(tuple(input_shape), weights, warnings)
    try:
        target = backbone.get_layer(layer).output
    except ValueError:
        raise ValueError(f"embedding layer {layer!r} is not a ResNet50 layer") from None
    return keras.Model(backbone.input, target)


def cell_labels(segments: np.ndarray, grid) -> np.ndarray:
    """Segment label at each feature cell's centre pixel: (N, H, W) -> (N, h, w)."""
    n, height, width = segments.shape
    gh, gw = grid
    ys = ((np.arange(gh) + 0.5) * height / gh).astype(int)
    xs = ((np.arange(gw) + 0.5) * width / gw).astype(int)
    return segments[:, ys][:, :, xs]


def pool_segments(features: np.ndarray, segments: np.ndarray) -> list[np.ndarray]:
    """Max-pool (N, h, w, D) features over each segment of (N, H, W) labels.

    A segment owns the cells whose centre pixel it covers; a segment too small to own a cell
    takes the cell under its centroid. Returns per image an (n_segments_i, D) array, row s =
    segment label s (labels are 0..max).
    """
    n, gh, gw, d = features.shape
    _, height, width = segments.shape
    owners = cell_labels(segments, (gh, gw))
    out = []
    for i in range(n):
        n_seg = int(segments[i].max()) + 1
        emb = np.full((n_seg, d), -np.inf, np.float32)
        np.maximum.at(emb, owners[i].ravel(), features[i].reshape(-1, d))
        missing = np.flatnonzero(np.isinf(emb[:, 0]))
        for s in missing:
            ys, xs = np.nonzero(segments[i] == s)
            if len(ys) == 0:
                emb[s] = 0.0  # label unused by SLIC: an empty segment, never looked up
                continue
            cy = min(gh - 1, int(ys.mean() * gh / height))
            cx = min(gw - 1, int(xs.mean() * gw / width))
            emb[s] = features[i, cy, cx]
        out.append(emb)
    return out


def segment_embeddings(images: np.ndarray, segments: np.ndarray, extractor: keras.Model,
                       batch_size: int = 32, progress: bool = False) -> list[np.ndarray]:
    """One forward pass per batch of images; embeddings per segment per image."""
    from tqdm.auto import tqdm
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="embeddings", disable=not progress,
                      leave=False):
        feats = extractor(preprocess(images[start:start + batch_size]), training=False).numpy()
        out.extend(pool_segments(feats, segments[start:start + batch_size]))
    return out
