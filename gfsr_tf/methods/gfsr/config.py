"""GFSR's options: total = CE + weight * (alpha*MAE + (1-alpha)*MSE + beta*Focal)."""
from __future__ import annotations

from dataclasses import dataclass

from ...config import GUIDANCE_SOURCES as MASK_SOURCES


@dataclass
class RelevanceConfig:
    weight: float = 1.0                 # lambda; 0 trains without the inner tape (= baseline)
    alpha: float = 0.5
    beta: float = 1.0
    focal_gamma: float = 2.0
    second_order: bool = True           # exact: differentiate through the Grad-CAM weights
    # With second_order=False: take the Grad-CAM from the classification loss's own backward pass
    # (one forward + one backward per step; true class; fused.py).
    fused: bool = False
    # Softmax heads only (binary heads: the two coincide): "logit" = Grad-CAM of the true-class
    # logit (a second backward above the target layer); "log_probability" = Grad-CAM of
    # log p(true class), straight from the loss gradient (no extra pass; a contrastive CAM).
    fused_cam: str = "logit"
    cam_class: str = "true"             # "true" (ground-truth class) | "predicted"
    warmup_epochs: int = 0              # GAIN-style: relevance loss off for the first epochs
    # Where the masks come from (gfsr_tf.guidance): "lungs" (benchmark: true lung fields,
    # blurred), "lesions" (benchmark: lesion mask on pneumonia images, lung fields on normal
    # ones; HAM10000: the lesion masks), "gaze" (EGD-CXR eye-gaze heatmaps), "annotations"
    # (concept masks propagated from a few annotated images: StudyConfig.annotations/concepts).
    mask_source: str = "lungs"
    mask_blur_sigma: float = 1.0
    # Extension beyond the paper ("right for the right reasons", Ross et al. 2017): penalise the
    # squared input gradient of the class score outside the mask. 0 = off (paper-faithful).
    input_gradient_weight: float = 0.0

    def __post_init__(self):
        choices = {"mask_source": MASK_SOURCES, "cam_class": ("true", "predicted"),
                   "fused_cam": ("logit", "log_probability")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"gfsr {key} must be one of {', '.join(allowed)}, got "
                                 f"{getattr(self, key)!r}")
        if self.weight < 0 or self.input_gradient_weight < 0:
            raise ValueError("gfsr weight and input_gradient_weight must be >= 0")
        if self.fused and (self.second_order or self.cam_class != "true"
                           or self.input_gradient_weight > 0):
            raise ValueError("gfsr fused needs second_order=False, cam_class='true' and no "
                             "input-gradient term")

    @property
    def guided(self) -> bool:
        return self.weight > 0 or self.input_gradient_weight > 0
