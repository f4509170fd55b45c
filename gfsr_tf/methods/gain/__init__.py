"""GAIN - Guided Attention Inference Network (Li, Wu, Peng, Ernst & Fu, CVPR 2018), with
external supervision (GAIN_ext).

    L(θ) = L_cl + α · L_am + ω · L_e

- L_cl: the classification loss (the baseline's CE);
- attention mining, L_am = mean_n s^{y_n}(I*_n): the attention map A = ReLU(Grad-CAM of the true
  class) at the target layer, normalised to [0, 1] and upsampled to the image, becomes the soft
  mask T(A) = sigmoid(ω_T (A − σ)) (σ = 0.5, ω_T = 10, the paper's); I* = I − T(A) ⊙ I is the
  image with the attended region erased, and s^y(I*) its true-class probability (binary heads:
  σ(z) for class 1, σ(−z) for class 0) - the model must not find the class outside its
  attention;
- external supervision, L_e = mean over pixels of (A − H)², H the relevance mask (the same masks
  GFSR trains towards).
Paper defaults: α = 1, ω = 10. Choices made here, each stated: the erasure is applied to the
network's input after preprocessing (0 = the ImageNet mean colour under ResNet50's "caffe"
preprocessing, black under unit scaling); the attention map and the erased image's score come
from the inference-mode network (running BatchNorm statistics: the map that is evaluated, one
per image, and erased images never enter the running statistics - the BatchNorm lesson of
docs/studies/right-reasons.md); the map is exact second order (α's and ω's gradients flow
through the Grad-CAM's channel weights, as the paper trains the attention end to end).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from ...saliency.gradcam import full_precision, gradcam
from ..mask_guided import MaskGuided, PenaltyStep, check_mask_options
from ..registry import register


@dataclasses.dataclass
class GainConfig:
    weight: float = 1.0             # α, attention mining
    external_weight: float = 10.0   # ω, external supervision (0: self-guided GAIN)
    sigma: float = 0.5              # σ of the soft mask T(A)
    sharpness: float = 10.0         # ω_T of the soft mask T(A)
    mask_source: str = "lungs"
    mask_blur_sigma: float = 1.0
    warmup_epochs: int = 0

    def __post_init__(self):
        if min(self.weight, self.external_weight, self.sharpness) < 0 or \
                not 0 < self.sigma < 1:
            raise ValueError("gain weight, external_weight and sharpness must be >= 0 and "
                             f"sigma in (0, 1), got {self.weight}, {self.external_weight}, "
                             f"{self.sharpness}, {self.sigma}")
        check_mask_options("gain", self)


def true_class_probability(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """s^y per image: σ(z) or σ(−z) for a single logit, softmax[y] otherwise."""
    labels = tf.cast(labels, tf.int32)
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        return tf.sigmoid(tf.where(labels == 1, z, -z))
    return tf.gather(tf.nn.softmax(logits), labels, batch_dims=1)


def gain_terms(cam_model, x: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor,
               config: GainConfig) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(L_am per image, L_e per image, the attention map A at image size)."""
    cam = gradcam(cam_model, x, tf.cast(labels, tf.int32), training=False)[0]  # [0, 1]
    attention = cam[..., None]
    if cam.shape[1:3] != x.shape[1:3]:     # (resize computes in float32)
        attention = tf.cast(tf.image.resize(attention, tf.shape(x)[1:3], method="bilinear"),
                            cam.dtype)
    soft = tf.sigmoid(config.sharpness * (attention - config.sigma))
    erased = x - soft * x
    logits = full_precision(cam_model(erased, training=False)[1])
    mining = true_class_probability(logits, labels)
    external = tf.reduce_mean(tf.square(attention[..., 0] - tf.cast(mask, attention.dtype)),
                              axis=[1, 2])
    return mining, external, attention[..., 0]


class GainStep(PenaltyStep):
    def penalties(self, x, batch):
        cfg = self.config
        mining, external, _ = gain_terms(self.cam_model, x, batch["label"], batch["mask"], cfg)
        return {"attention_mining": (cfg.weight, tf.reduce_mean(mining)),
                "external_supervision": (cfg.external_weight, tf.reduce_mean(external))}


class Gain(MaskGuided):
    name = "gain"
    config_class = GainConfig
    step_class = GainStep

    def describe(self, report, variant):
        o = report[variant]["training"].get("gain", {})
        return ["", f"## {variant}: GAIN with external supervision (Li et al. 2018)", "",
                "CE + α · (true-class score of the image with the Grad-CAM's attended region "
                "erased) + ω · (attention map − relevance mask)², α = "
                f"{o.get('weight')}, ω = {o.get('external_weight')}; masks: "
                f"{o.get('mask_source')}."]


register(Gain())

__all__ = ["Gain", "GainConfig", "GainStep", "gain_terms", "true_class_probability"]
