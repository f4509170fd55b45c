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
    # Guidance off for the first epochs (GAIN-style): the relevance loss, the extension
    # penalties and the counterfactual images (their CE and the augmentation) start after it.
    warmup_epochs: int = 0
    # then raise the weights linearly over this many epochs (0: at once). Measured: a logit
    # consistency switched on at full weight after 8 plain epochs (marker effect ~7 logits,
    # penalty ~50) collapsed the network to a constant output within one epoch.
    ramp_epochs: int = 0
    # The decision constraints (counterfactual images, their CE and the consistency) start this
    # many epochs after the relevance loss, with their own ramp of ramp_epochs: the two terms
    # ramped together collapsed the network for an epoch (../shared/notes/right-reasons.md).
    consistency_delay_epochs: int = 0
    # Where the masks come from (gfsr_tf.guidance): "lungs" (benchmark: true lung fields,
    # blurred), "lesions" (benchmark: lesion mask on pneumonia images, lung fields on normal
    # ones; HAM10000: the lesion masks), "gaze" (EGD-CXR eye-gaze heatmaps), "annotations"
    # (concept masks propagated from a few annotated images: StudyConfig.annotations/concepts).
    mask_source: str = "lungs"
    mask_blur_sigma: float = 1.0
    # Extension beyond the paper ("right for the right reasons", Ross et al. 2017): penalise the
    # squared input gradient of the class score outside the mask. 0 = off (paper-faithful).
    input_gradient_weight: float = 0.0
    # Where the Grad-CAM is computed (the shortcut study's diagnosis, docs/studies/shortcuts.md): "training" (the
    # paper: BatchNorm on batch statistics, which makes each channel's weights sum to zero over
    # the batch) or "inference" (running statistics: the CAM that is evaluated; costs one more
    # forward and backward pass). cam_cells "live": only the cells the next stage reads.
    cam_mode: str = "training"
    cam_cells: str = "all"
    # Which images of a doubled counterfactual batch (consistency_weight > 0) the map terms
    # (GFSR's loss and the map extensions) read: "all" (the clean images and their
    # counterfactual twins) or "clean" (the clean half only: with cam_mode "inference" its extra
    # forward and backward pass runs on half the images; the twins still carry the CE and the
    # consistency). An extension when "clean" (the paper has no twins to choose from).
    # Measured on gfsr_plus (seed 0): the step 0.78x as costly, the map worse (lung hit 0.887
    # against 0.950, CAM-fooling 0.030 against 0.015): the twins' maps help train the map.
    cam_images: str = "all"
    # Extensions that constrain the decision, not the CAM's shape (losses/counterfactual.py):
    # (a) counterfactual_rate: share of images whose out-of-mask region is replaced by another
    #     batch image's (augmentation; the mask dilated by replace_dilation of the image side);
    # (b) consistency_weight w: CE(x) + CE(x~) + w (z(x) - z(x~))^2, x~ = every image with a
    #     counterfactual background (twice the batch per step);
    # (c) outside_attribution_weight: the share of the signed gradient x activation map outside
    #     the mask, at the target layer (exact second order).
    counterfactual_rate: float = 0.0
    consistency_weight: float = 0.0
    outside_attribution_weight: float = 0.0
    replace_dilation: float = 0.06
    # A last stage, not a loss term (extension): re-estimate the BatchNorm running statistics on
    # the clean training images after training (training/batchnorm.py). The guided step's extra
    # training-mode passes leave them describing batches the network never sees at inference;
    # measured: the late "collapses" of guided models were this alone.
    bn_recalibration: bool = False
    # BatchNorm in the guided epochs (after warmup_epochs), extensions beside the paper's
    # "batch" (every training-mode pass normalises with its batch's statistics and moves the
    # running ones, momentum as built):
    # - "held": at the start of every guided epoch the running statistics are re-estimated on
    #   the clean training images (training/batchnorm.py) and then held for the epoch (momentum
    #   1: the training-mode passes still normalise with batch statistics but no longer move
    #   them), so the inference-mode Grad-CAM the loss trains (cam_mode "inference") is computed
    #   with the statistics the network will be evaluated with, not with a running average of
    #   the doubled counterfactual batches. Momenta are restored by the last stage.
    # - "frozen": the same re-estimation, then every BatchNorm layer frozen for the epoch
    #   (Keras' `trainable = False`: it normalises with those statistics in training mode too),
    #   one pass per step. Measured: from scratch it diverged within its second guided epoch
    #   (seed 0: CE 70, validation AUC 0.5) - without batch statistics nothing bounds the
    #   activations while the weights move (docs/studies/right-reasons.md).
    # Neither "frozen" nor "held" changes the warm-up epochs (shared with the baseline).
    batchnorm: str = "batch"
    # Extension: penalise negative evidence inside the mask, mean(m * relu(-z) / max|z|) of the
    # Grad-CAM before its ReLU (z). GFSR's loss sees the CAM after the ReLU, so a map that is
    # negative everywhere (an all-zero Grad-CAM) gets no gradient from it and stays empty; this
    # term does. 0 = off.
    negative_evidence_weight: float = 0.0
    # Extension: GFSR's loss also on the counterfactual Grad-CAM relu(-z) (Selvaraju et al. 2017,
    # sec. 5: the evidence *against* the class; for a single-logit binary head exactly the other
    # class's Grad-CAM), towards the same mask: the evidence for and against the decision both
    # sit on the anatomy. Why: round 5's gfsr_plus put the other class's Grad-CAM in the image
    # corner on ~every image, and that corner became the true-class map of the pneumonia images
    # it was unsure of (all 45 pneumonia test images with p < 0.5 on seed 2, 60 of its 64 lung
    # misses; docs/studies/right-reasons.md, round 6). No extra pass: z is already computed.
    # Measured at weight 1 (seed 2): worse on every verdict figure - a max-normalised map whose
    # only positive cell is that corner gets no gradient there; the network emptied maps instead.
    counter_evidence_weight: float = 0.0
    # Extension: the share of the Grad-CAM's evidence of either sign (|z| before its ReLU) that
    # lies outside the mask (losses/relevance.py:outside_evidence). Why: round 6 found the
    # misjudged images' true-class maps on a border cell where the other class's evidence sits
    # on every image - a lone positive cell that GFSR's max-normalised loss cannot move (see
    # counter_evidence_weight); this share has a gradient there, and on the negative border
    # evidence that becomes the other class's map. No extra pass: z is already computed.
    outside_evidence_weight: float = 0.0
    # Extension: the map GFSR's loss trains (and the report evaluates, and `gfsr explain` shows
    # for the saved model): "gradcam" (the paper) or "layercam" (Jiang et al. 2021: each cell's
    # channels weighted by their own positive gradient, saliency/gradcam.py). Why: at conv3 the
    # Grad-CAM's channel-mean weights cancel (half of a guided model's maps were empty) while
    # LayerCAM of the same models pointed into the lungs (../shared/notes/right-reasons.md). The
    # extension terms above stay defined on the Grad-CAM before its ReLU.
    saliency: str = "gradcam"

    def __post_init__(self):
        choices = {"mask_source": MASK_SOURCES, "cam_class": ("true", "predicted"),
                   "fused_cam": ("logit", "log_probability"),
                   "cam_mode": ("training", "inference"), "cam_cells": ("all", "live"),
                   "cam_images": ("all", "clean"),
                   "batchnorm": ("batch", "held", "frozen"),
                   "saliency": ("gradcam", "layercam")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"gfsr {key} must be one of {', '.join(allowed)}, got "
                                 f"{getattr(self, key)!r}")
        for key in ("warmup_epochs", "ramp_epochs", "consistency_delay_epochs"):
            if getattr(self, key) < 0:
                raise ValueError(f"gfsr {key} must be >= 0, got {getattr(self, key)}")
        for key in ("weight", "input_gradient_weight", "consistency_weight",
                    "outside_attribution_weight", "replace_dilation",
                    "negative_evidence_weight", "counter_evidence_weight",
                    "outside_evidence_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"gfsr {key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.counterfactual_rate <= 1:
            raise ValueError(f"gfsr counterfactual_rate must be in [0, 1], got "
                             f"{self.counterfactual_rate}")
        if self.fused and (self.second_order or self.cam_class != "true" or self.extended
                           or self.cam_mode != "training" or self.cam_cells != "all"
                           or self.saliency != "gradcam"):
            raise ValueError("gfsr fused needs second_order=False, cam_class='true', the "
                             "training-mode Grad-CAM on all cells and no extension term")
        if self.batchnorm == "frozen" and self.bn_recalibration:
            raise ValueError("gfsr batchnorm='frozen' trains with the statistics it re-estimates "
                             "each epoch; bn_recalibration would change them after the last "
                             "epoch: use one of the two")

    @property
    def extended(self) -> bool:
        """Uses a term beyond the paper's relevance loss."""
        return any(v > 0 for v in (self.input_gradient_weight, self.counterfactual_rate,
                                   self.consistency_weight, self.outside_attribution_weight,
                                   self.negative_evidence_weight,
                                   self.counter_evidence_weight,
                                   self.outside_evidence_weight))

    @property
    def guided(self) -> bool:
        return self.weight > 0 or self.extended
