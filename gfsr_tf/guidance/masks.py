"""Per-image relevance masks for guided training: from ground truth the dataset carries (lungs,
lesions, eye-gaze) or propagated from a few annotations (`concepts.propagate_masks`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..config import ConceptConfig
from ..datasets.base import ImageSet
from ..datasets.raster import gaussian_blur
from ..datasets.streaming import on_disk
from ..metrics import box_masks, pixel_auc
from .annotations import load_mask_folder, load_segment_json
from .concepts import propagate_masks
from .templates import annotation_source

GROUND_TRUTH_SOURCES = ("lungs", "lesions", "gaze")


def random_blobs(areas: np.ndarray, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A wrong-mask control: per image, smooth random blobs covering exactly the given area
    fraction (a blurred noise field thresholded at its (1 - area) quantile). Seeded per image."""
    h, w = size
    out = np.zeros((len(areas), h, w), np.float32)
    for i, area in enumerate(areas):
        field = np.random.default_rng([seed, 31, i]).normal(size=(h, w)).astype(np.float32)
        field = gaussian_blur(field, max(h, w) / 10, mode="reflect")
        if area > 0:
            out[i] = field >= np.quantile(field, 1 - area)
    return out


def relevance_masks(data: ImageSet, source: str = "lungs", blur_sigma: float = 1.0) -> np.ndarray:
    """Soft relevance masks (N, H, W) in [0, 1] from ground truth the dataset carries.

    "lungs": the benchmark's lung fields; "lesions": on the benchmark lesion masks on pneumonia
    images and lung fields on normal ones (what an annotator marking the opacity would give),
    elsewhere (HAM10000) every image's lesion mask; "gaze": eye-gaze heatmaps (EGD-CXR);
    "random_blobs": a wrong-mask control, blobs of each image's lung area at random places
    (`random_blobs`: is a gain grounding or regularisation? Shrestha et al. 2020). Blurred
    by blur_sigma px and max-normalised. Masks propagated from a few annotations come from
    `propagated_masks`.
    """
    available = {k: getattr(data, k) for k in GROUND_TRUTH_SOURCES}
    if source == "random_blobs" and data.lungs is not None:
        areas = (data.lungs > 0.5).reshape(len(data), -1).mean(1)
        available[source] = random_blobs(areas, data.lungs.shape[1:])
    if source not in available:
        raise ValueError(f"unknown ground-truth mask source {source!r}; choose one of "
                         f"{', '.join(available)}")
    if available[source] is None:
        have = [k for k, v in available.items() if v is not None]
        raise ValueError(f"this dataset has no {source} masks"
                         + (f" (it has: {', '.join(have)})" if have else "")
                         + "; use mask_source='annotations' with an annotation folder or JSON "
                         "(--masks annotations --annotations PATH)")
    if source == "lesions" and data.lungs is not None:
        masks = data.lungs.astype(np.float32).copy()
        positive = data.labels == 1
        masks[positive] = data.lesions[positive].astype(np.float32)
    else:
        masks = available[source].astype(np.float32).copy()
    if blur_sigma > 0:
        # version-stable float64 blur (the benchmark's targets must not move with OpenCV)
        masks = np.stack([gaussian_blur(m, blur_sigma, mode="reflect") for m in masks])
        masks = masks.astype(np.float32)
    peak = masks.reshape(len(masks), -1).max(1)
    masks /= np.maximum(peak, 1e-6)[:, None, None]
    return np.clip(masks, 0, 1)


def load_annotations(train: ImageSet, annotations: str | None = None, per_class: int = 5,
                     seed: int = 0) -> dict:
    """{training-image index: marks (H, W) bool | [segment ids]}: from `annotations` (a folder of
    annotation images or a JSON of segment ids, matched to the images by file stem), or, on the
    benchmark, simulated coarse scribbles over the lungs of the first `per_class` training images
    of each class."""
    if annotations:
        path = Path(annotations)
        if not path.exists():
            raise FileNotFoundError(f"annotations not found: {path}")
        if not train.names:
            raise ValueError("annotations are matched by file name, but these images have none")
        if path.is_dir():
            return load_mask_folder(path, train.names, train.images.shape[1:3])
        return load_segment_json(path, train.names)
    if train.lungs is None:
        raise ValueError("mask_source='annotations' on real data needs annotations: a folder of "
                         "annotation masks or a JSON of segment ids (--annotations PATH)")
    from ..datasets.synthetic import simulate_scribbles
    index = [i for c in range(train.num_classes)
             for i in np.flatnonzero(train.labels == c)[:per_class]]
    scribbles = simulate_scribbles(train.lungs[index] > 0.5, seed=seed)
    return {int(i): s > 0 for i, s in zip(index, scribbles)}


def propagated_masks(train: ImageSet, concepts: ConceptConfig, annotations: str | None = None,
                     *, per_class: int = 5, seed: int = 0, cache_dir: Path | None = None,
                     warnings: list | None = None, verbose: int = 1, shard_size: int = 10_000):
    """Concept masks for every training image from a few annotations, and the report's `masks`
    section: what was annotated, concept scores, timings and - where the ground truth is known
    (benchmark) - how well the masks separate the lungs from the rest."""
    marks = load_annotations(train, annotations, per_class, seed)
    if on_disk(train.images):  # a streamed split: sharded masks that training reads by row
        from .sharded import sharded_concepts
        result = sharded_concepts(train.images, marks, concepts, cache_dir,
                                  shard_size=shard_size, progress=verbose > 0, warnings=warnings)
    else:
        result = propagate_masks(train.images, marks, concepts, cache_dir=cache_dir,
                                 progress=verbose > 0, warnings=warnings)
    origin = annotation_source(annotations) if annotations else {}
    section = {"source": annotations or
               f"simulated scribbles on {per_class} training images per class",
               "annotator": origin.get("annotator", "person" if annotations else "simulated"),
               "note": origin.get("note", ""),
               "annotated_images": sorted(marks),
               "n_annotated_images": result.n_annotated_images,
               "n_annotated_segments": result.n_annotated_segments,
               "concept_scores": result.scores.tolist(), "timings": result.timings,
               "cached": result.cached, "config": dataclasses.asdict(concepts),
               # a streamed split's masks live in shards that training reads by row
               "storage": f"sharded: {result.folder}" if hasattr(result, "folder") else "memory"}
    if train.lungs is not None:
        lungs = train.lungs > 0.5
        section["lung_pixel_auc"] = pixel_auc(result.masks, lungs)
        section["mean_relevance"] = {"lungs": float(result.masks[lungs].mean()),
                                     "outside_lungs": float(result.masks[~lungs].mean())}
        if train.has_marker is not None and train.has_marker.any():
            marked = train.has_marker
            boxes = box_masks(train.marker_boxes[marked], lungs.shape[1:])
            section["mean_relevance"]["marker"] = float(result.masks[marked][boxes].mean())
    return result, section


def save_concepts(path, images: np.ndarray, result, index) -> None:
    """What the report's Fig 8 (`concepts.png`) needs, so it renders without recomputing:
    the chosen training images, their segments, concept maps and masks."""
    index = np.asarray(index, int)
    np.savez_compressed(path, index=index, images=images[index],
                        segments=result.segments[index], concept_map=result.concept_map[index],
                        masks=result.masks[index])
