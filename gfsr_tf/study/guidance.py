"""The masks each guided variant trains towards, computed once per (source, blur) per study.

Ground truth the data carries (lungs, lesions, gaze) is used as it is. Masks from annotations are
propagated once per study from `--annotations`, else (real data) from template annotations
drawn into the run folder, else (benchmark) from simulated scribbles. On real data without the
requested ground truth (e.g. the main job's lung masks on the Kermany layout), guidance falls
back to annotations when any are available and says so in the report's warnings.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..guidance.masks import GROUND_TRUTH_SOURCES, propagated_masks, relevance_masks
from ..guidance.templates import write_template_annotations


def shortcut_relevance(masks: np.ndarray, train, template: str) -> dict:
    """How much relevance the propagated masks give the planted marker, where no true lung mask
    exists to judge them by: per marked training image the mean mask value inside its marker box,
    inside the template region (lung fields, fundus disc) and outside both. Good masks: low in
    the box, high in the region."""
    from ..guidance.templates import template_mask
    box, region, outside = [], [], []
    for i in np.flatnonzero(train.has_marker):
        y0, x0, y1, x1 = train.marker_boxes[i]
        in_box = np.zeros(masks.shape[1:], bool)
        in_box[y0:y1, x0:x1] = True
        in_region = template_mask(template, train.images[i]) > 0.5
        # a part an image does not have (a fundus disc filling the frame leaves no "elsewhere")
        # is left out of that part's list rather than recorded as NaN
        for part, where in ((box, in_box), (region, in_region & ~in_box),
                            (outside, ~in_region & ~in_box)):
            if where.any():
                part.append(float(masks[i][where].mean()))

    def mean(values):
        return float(np.mean(values)) if values else None

    return {"template": template, "marker_box": box, "template_region": region,
            "outside": outside, "marker_box_mean": mean(box),
            "template_region_mean": mean(region), "outside_mean": mean(outside)}


class StudyGuidance:
    def __init__(self, config, train, run_root: Path, cache_root: Path, warnings: list,
                 verbose: int = 1):
        self.config, self.train, self.run_root = config, train, run_root
        self.cache_root, self.warnings, self.verbose = cache_root, warnings, verbose
        self._masks: dict = {}
        # a real-image shortcut dataset names the template its images call for (lung fields,
        # fundus disc) when the study names none
        from ..datasets.real_shortcut import TEMPLATE_OF
        self.template = config.annotation_template or TEMPLATE_OF.get(config.dataset)
        self.concepts = None          # guidance.concepts.ConceptMasks, when propagated
        self.section: dict | None = None  # the report's `masks` section

    def annotations_available(self) -> bool:
        return bool(self.config.annotations or self.template
                    or self.train.lungs is not None)

    def masks(self, variant: str, source: str, blur: float) -> tuple[np.ndarray | None, str]:
        """(masks (N, H, W) or None when the variant cannot be trained, the source used)."""
        if source in GROUND_TRUTH_SOURCES and getattr(self.train, source) is None:
            if not (self.config.annotations or self.template):
                self.warnings.append(
                    f"{variant}: not trained - this dataset has no {source} masks; use "
                    "mask_source='annotations' with an annotation folder or JSON")
                return None, source
            self.warnings.append(
                f"{variant}: this dataset has no {source} masks, so it trains towards masks "
                "propagated from " + ("the given annotations" if self.config.annotations else
                                      f"{self.template} template annotations "
                                      "(drawn by rule, not by a clinician)"))
            source = "annotations"
        key = (source, blur if source != "annotations" else None)
        if key not in self._masks:
            if source == "annotations":
                self._masks[key] = self._propagate()
            else:
                self._masks[key] = relevance_masks(self.train, source, blur)
        return self._masks[key], source

    def _propagate(self) -> np.ndarray:
        config, train = self.config, self.train
        annotations = config.annotations
        if not annotations and self.template and train.lungs is None:
            annotations = str(write_template_annotations(
                train.images, train.labels, train.names, self.template,
                self.run_root / "template_annotations", config.annotations_per_class))
        self.concepts, self.section = propagated_masks(
            train, config.concepts, annotations, per_class=config.annotations_per_class,
            seed=config.train.seed, cache_dir=self.cache_root / "masks", warnings=self.warnings,
            verbose=self.verbose)
        if train.marker_boxes is not None and train.has_marker is not None and self.template:
            self.section["shortcut_relevance"] = shortcut_relevance(
                self.concepts.masks, train, self.template)
        return self.concepts.masks

    def concept_examples(self) -> np.ndarray:
        """Training images for the report's Fig 8: those that were not annotated first (their
        masks were propagated), then annotated ones (tiny sets may have no others)."""
        annotated = set(self.section["annotated_images"])
        order = sorted(range(len(self.train)), key=lambda i: (i in annotated, i))
        return np.asarray(order[:self.config.gradcam_examples], int)
