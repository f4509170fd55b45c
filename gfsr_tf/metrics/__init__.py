"""Pure metric functions (numpy in, numbers out): classification with bootstrap CIs, per-class
AUC tables, localization, heatmaps, robustness perturbations, faithfulness, SegX/SegU. The
evaluators (`gfsr_tf.evaluators`) compute report sections with them. Formerly
`gfsr_tf.evaluation` (still importable, deprecated)."""
from .auc_tables import auc_table, format_auc
from .classification import (binary_metrics, choose_threshold, classification_metrics,
                             group_accuracy, mean_ci, paired_bootstrap)
from .heatmaps import heatmap_metrics
from .localization import (auitc, binarise, box_masks, energy_inside, hit_rate, iou, iou_curve,
                           iou_top_k, miou, normalise_maps, pixel_auc, tune_threshold)
from .robustness import (crop_corner, decision_change, fundus_centre, occlude, replace_periphery,
                         selective_blur)

__all__ = ["auc_table", "format_auc", "heatmap_metrics", "auitc", "binarise", "binary_metrics", "box_masks", "choose_threshold",
           "classification_metrics", "crop_corner", "decision_change", "energy_inside",
           "fundus_centre", "group_accuracy", "hit_rate", "iou", "iou_curve", "iou_top_k",
           "mean_ci", "miou",
           "normalise_maps", "occlude", "paired_bootstrap", "pixel_auc", "replace_periphery",
           "selective_blur", "tune_threshold"]
