"""The one in-memory container every loader returns, so training and evaluation see one shape."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageSet:
    """A split of images with everything known about them.

    images: uint8 (N, H, W, C), C in {1, 3}; labels: int64 (N,).
    Optional per-image arrays (None when the source does not have them):
      lungs       float32 (N, H, W) in [0, 1] - region a radiologist would look at (benchmark)
      lesions     bool    (N, H, W)          - ground-truth lesion masks (localization metrics)
      gaze        float32 (N, H, W) in [0, 1] - radiologists' eye-gaze heatmaps (EGD-CXR)
      twins       uint8   like images        - exact counterfactual without the shortcut marker
      marker_added uint8  like images        - exact counterfactual with the marker drawn (the
                                               image itself where it already has one)
      lesion_removed uint8 like images       - exact counterfactual without the lesions (the
                                               same random draws, the finding not drawn; the
                                               image itself where it has none): what deleting
                                               the evidence means on the benchmark
      has_marker  bool    (N,)
      marker_boxes int    (N, 4) y0, x0, y1, x1 of the marker glyph
      regions     {name: float32 (N, H, W)}     - anatomical masks (EGD-CXR: left_lung,
                                                  right_lung (patient convention), heart, ...)
      fixations   list of float (k, 4) arrays    - per image x, y (original pixels), duration
                                                  (s), start time (s) of each kept fixation
      transcripts list of [(sentence, end time s)] per image (EGD-CXR dictation)
      label_sets  int64 (N, K) 0/1             - multi-label ground truth (several findings per
                                                  image); `label_matrix()` is the one-hot of
                                                  `labels` where it is None
      class_masks bool  (N, K, H, W)           - per-class ground-truth regions (multi-label
                                                  localization; empty where a class is absent)
      prompts     int64 (N,)                   - the anatomical prompt of each sample (gaze-
                                                  intensity data: one sample per image x region)
      original_shapes int (N, 2)               - rows, columns of the image the fixations'
                                                  coordinates refer to (the DICOM's)
    """
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...] = ("normal", "pneumonia")
    lungs: np.ndarray | None = None
    lesions: np.ndarray | None = None
    twins: np.ndarray | None = None
    has_marker: np.ndarray | None = None
    marker_boxes: np.ndarray | None = None
    gaze: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    marker_added: np.ndarray | None = None
    regions: dict | None = None
    fixations: list | None = None
    transcripts: list | None = None
    label_sets: np.ndarray | None = None
    class_masks: np.ndarray | None = None
    prompts: np.ndarray | None = None
    original_shapes: np.ndarray | None = None
    lesion_removed: np.ndarray | None = None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be (N, H, W, 1|3), got {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        per_image = {key: getattr(self, key) for key in (
            "lungs", "lesions", "twins", "has_marker", "marker_boxes", "gaze", "marker_added",
            "fixations", "transcripts", "label_sets", "class_masks", "prompts",
            "original_shapes", "lesion_removed")}
        per_image.update({f"regions[{k}]": v for k, v in (self.regions or {}).items()})
        for key, value in per_image.items():
            if value is not None and len(value) != len(self.images):
                raise ValueError(f"{key} has {len(value)} entries for {len(self.images)} images")
        k = len(self.class_names)
        if self.label_sets is not None and np.shape(self.label_sets)[1:] != (k,):
            raise ValueError(f"label_sets {np.shape(self.label_sets)} must be (N, {k}): one 0/1 "
                             f"column per class {self.class_names}")
        if self.class_masks is not None and \
                np.shape(self.class_masks)[1:] != (k,) + self.images.shape[1:3]:
            raise ValueError(f"class_masks {np.shape(self.class_masks)} must be (N, {k}, "
                             f"{self.images.shape[1]}, {self.images.shape[2]})")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_matrix(self) -> np.ndarray:
        """(N, K) 0/1: `label_sets`, or the one-hot of `labels` for single-label data."""
        if self.label_sets is not None:
            return np.asarray(self.label_sets, np.int64)
        return (np.asarray(self.labels)[:, None] == np.arange(self.num_classes)).astype(np.int64)

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index)
        pick = lambda a: None if a is None else a[index]
        listed = lambda a: None if a is None else [a[i] for i in index]
        return ImageSet(self.images[index], self.labels[index], self.class_names,
                        pick(self.lungs), pick(self.lesions), pick(self.twins),
                        pick(self.has_marker), pick(self.marker_boxes), pick(self.gaze),
                        listed(self.names) or [], pick(self.marker_added),
                        None if self.regions is None else
                        {k: v[index] for k, v in self.regions.items()},
                        listed(self.fixations), listed(self.transcripts),
                        pick(self.label_sets), pick(self.class_masks), pick(self.prompts),
                        pick(self.original_shapes), pick(self.lesion_removed))
