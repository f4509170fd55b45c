from .classification import binary_metrics
from .localization import (auitc, binarise, box_masks, hit_rate, iou, iou_curve, iou_top_k, miou,
                           normalise_maps, pixel_auc, tune_threshold)
from .robustness import crop_corner, decision_change

__all__ = ["auitc", "binarise", "binary_metrics", "box_masks", "crop_corner", "decision_change",
           "hit_rate", "iou", "iou_curve", "iou_top_k", "miou", "normalise_maps", "pixel_auc",
           "tune_threshold"]
