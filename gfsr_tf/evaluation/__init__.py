from .classification import binary_metrics
from .localization import box_masks, hit_rate, pixel_auc
from .robustness import crop_corner, decision_change

__all__ = ["binary_metrics", "box_masks", "crop_corner", "decision_change", "hit_rate", "pixel_auc"]
