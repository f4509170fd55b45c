"""Concepts (k-means over segment embeddings) and the propagated soft relevance masks.

Pipeline (paper §3.1.1-3.1.2): SLIC segments -> ResNet50 segment embeddings -> k-means concepts
-> concept relevance from a few annotated images -> every training segment inherits its
concept's score -> one soft mask per image in [0, 1]. Results are cached in an npz keyed by a
fingerprint of the images, the annotations and every parameter.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .annotations import annotated_segments
from ..config import ConceptConfig
from .embeddings import feature_extractor, segment_embeddings
from .segments import slic_segments


@dataclass
class ConceptMasks:
    masks: np.ndarray                 # float32 (N, H, W) in [0, 1]
    segments: np.ndarray              # int32 (N, H, W)
    concept_map: np.ndarray           # int16 (N, H, W): concept of each pixel's segment
    scores: np.ndarray                # (k,) concept relevance, max 1
    n_annotated_images: int
    n_annotated_segments: int
    timings: dict = field(default_factory=dict)
    cached: bool = False


def concept_scores(concepts_of_annotated: np.ndarray, k: int) -> np.ndarray:
    """Score of each concept = fraction of the annotated segments that fall in it, scaled so the
    most relevant concept scores 1."""
    counts = np.bincount(np.asarray(concepts_of_annotated, int), minlength=k).astype(np.float64)
    if counts.sum() == 0:
        raise ValueError("no annotated segments: nothing to learn relevance from")
    fractions = counts / counts.sum()
    return (fractions / fractions.max()).astype(np.float32)


def fingerprint(images: np.ndarray, annotations: dict, config: ConceptConfig) -> str:
    h = hashlib.sha256()
    h.update(str(images.shape).encode() + str(images.dtype).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    for key in sorted(annotations):
        value = annotations[key]
        h.update(str(key).encode())
        h.update(np.packbits(np.asarray(value) > 0).tobytes() if isinstance(value, np.ndarray)
                 else json.dumps(sorted(int(v) for v in value)).encode())
    h.update(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    return h.hexdigest()[:24]


def normalise(x: np.ndarray, how: str, mean=None, std=None) -> np.ndarray:
    """Embedding rows normalised before k-means; zscore uses `mean`/`std` when given (the
    sharded run's exact statistics over every shard), else the rows' own."""
    if how == "zscore":
        mean = x.mean(0) if mean is None else mean
        std = x.std(0) if std is None else std
        return (x - mean) / (std + 1e-6)
    if how == "l2":
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)
    if how == "none":
        return x
    raise ValueError(f"normalise must be 'zscore', 'l2' or 'none', got {how!r}")


def segment_positions(segments: np.ndarray) -> np.ndarray:
    """Per segment (labels 0..max of each image, in order) its centroid's height and its
    distance from the vertical midline, as fractions of the image: (n_segments_total, 2).
    A label SLIC left unused gets the image centre (its row is never looked up)."""
    n, height, width = segments.shape
    yy, xx = np.mgrid[:height, :width]
    rows = []
    for labels in segments.reshape(n, -1):
        count = np.bincount(labels, minlength=labels.max() + 1)
        used = np.maximum(count, 1)
        cy = np.bincount(labels, (yy.ravel() + 0.5) / height, len(count)) / used
        cx = np.bincount(labels, (xx.ravel() + 0.5) / width, len(count)) / used
        rows.append(np.where(count[:, None] > 0, np.stack([cy, np.abs(cx - 0.5)], 1), [0.5, 0.0]))
    return np.concatenate(rows)


def _smooth(masks: np.ndarray, sigma: float) -> np.ndarray:
    from ..datasets.raster import gaussian_blur
    return np.stack([gaussian_blur(m, sigma, mode="reflect") for m in masks]).astype(np.float32)


def propagate_masks(images: np.ndarray, annotations: dict, config: ConceptConfig = ConceptConfig(),
                    *, cache_dir=None, progress: bool = True,
                    warnings: list | None = None) -> ConceptMasks:
    """Soft relevance masks for every image from annotations of a few of them.

    annotations: {image index: bool (H, W) marks | list of segment ids}.
    """
    from sklearn.cluster import KMeans
    images = np.asarray(images)
    if not annotations:
        raise ValueError("no annotations given: nothing to learn relevance from")
    bad = [i for i in annotations if not 0 <= i < len(images)]
    if bad:
        raise ValueError(f"annotations for image indices {bad} outside 0..{len(images) - 1}")
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"masks_{fingerprint(images, annotations, config)}.npz"
        if cache_path.exists():
            with np.load(cache_path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return ConceptMasks(z["masks"], z["segments"], z["concept_map"], z["scores"],
                                    meta["n_annotated_images"], meta["n_annotated_segments"],
                                    meta["timings"], cached=True)
    timings = {}
    t0 = time.perf_counter()
    segments = slic_segments(images, config.n_segments, config.compactness, progress,
                             config.min_size_factor)
    timings["slic_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extractor = feature_extractor(images.shape[1:3] + (3,), config.layer, config.weights, warnings,
                                  config.seed)
    embeddings = segment_embeddings(images, segments, extractor, config.batch_size, progress)
    timings["embeddings_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stacked = normalise(np.concatenate(embeddings), config.normalise)
    if config.position_weight > 0:   # extension: see ConceptConfig.position_weight
        stacked = np.concatenate([stacked, config.position_weight
                                  * normalise(segment_positions(segments), "zscore")], 1)
    n_total = len(stacked)
    if config.k > n_total:
        raise ValueError(f"k={config.k} concepts but only {n_total} segments in the image set")
    rng = np.random.default_rng(config.seed)
    fit = stacked if n_total <= config.max_fit_segments else \
        stacked[rng.choice(n_total, config.max_fit_segments, replace=False)]
    kmeans = KMeans(config.k, n_init=4, random_state=config.seed).fit(fit)
    labels = kmeans.predict(stacked)
    per_image = np.split(labels, np.cumsum([len(e) for e in embeddings])[:-1])
    timings["kmeans_s"] = time.perf_counter() - t0
    # Concept relevance from the annotated images.
    chosen = []
    for i, ann in annotations.items():
        if isinstance(ann, np.ndarray):
            picked = annotated_segments(segments[i], ann, config.min_fraction)
            ids = np.flatnonzero(picked)
        else:
            ids = np.asarray(ann, int)
            n_seg = len(per_image[i])
            if ids.size and (ids.min() < 0 or ids.max() >= n_seg):
                raise ValueError(f"image {i}: segment ids must be in 0..{n_seg - 1}, got {list(ids)}")
        chosen.append(per_image[i][ids])
    chosen = np.concatenate(chosen) if chosen else np.zeros(0, int)
    scores = concept_scores(chosen, config.k)
    concept_map = np.stack([per_image[i][segments[i]] for i in range(len(images))]).astype(np.int16)
    masks = scores[concept_map].astype(np.float32)
    if config.smooth_sigma > 0:
        masks = np.clip(_smooth(masks, config.smooth_sigma), 0, 1)
    timings["total_s"] = sum(timings.values())
    timings["images_per_s"] = len(images) / max(timings["total_s"], 1e-9)
    result = ConceptMasks(masks, segments, concept_map, scores,
                          sum(1 for a in annotations.values() if np.any(a)), int(len(chosen)),
                          timings)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp.npz")
        meta = {"n_annotated_images": result.n_annotated_images,
                "n_annotated_segments": result.n_annotated_segments, "timings": timings,
                "config": dataclasses.asdict(config)}
        np.savez_compressed(tmp, masks=masks, segments=segments, concept_map=concept_map,
                            scores=scores, meta=np.array(json.dumps(meta)))
        tmp.replace(cache_path)
    return result
