"""HINT - Human Importance-aware Network Tuning (Selvaraju et al., ICCV 2019).

HINT aligns the *ranking* of the network's gradient-based importances with the ranking of
human importances: for every pair of regions (a, b) that a human ranks a above b, the network is
penalised when it ranks b above a,

    L(θ) = CE + λ · mean over images of  mean_{(a, b): H_a − H_b > δ}  max(0, G_b − G_a),

HINT's ranking loss (Selvaraju et al., Sec. 3). Choices made here, each stated:
- regions: the cells of the Grad-CAM grid at the target layer (the paper ranks object proposals
  of a detector, which a chest X-ray classifier has none of); human importance H = the relevance
  mask area-averaged onto that grid (the same masks GFSR trains towards);
- network importance G: Grad-CAM's linear map before its ReLU, Σ_c w_c A_c with w_c the
  spatial-mean gradient of the true-class logit (the paper's proposal importance: the gradient
  of the score summed over a proposal's features - signed, no ReLU), divided by its largest
  magnitude per image, so the network cannot lower the hinge by shrinking every importance;
- pairs: only those whose human importances differ by more than δ (`pair_margin`, default
  0.1): a blurred mask gives nearly every pair a hair's difference, and those carry no human
  ranking;
- the Grad-CAM is that of the inference-mode network (running BatchNorm statistics: the map that
  is evaluated, and one per image - in training mode BatchNorm couples a batch's maps), exact
  second order; the CE trains in training mode as the baseline's.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from ...losses.relevance import mask_to_grid
from ...saliency.gradcam import full_precision, gradcam_before_relu, score_gradients
from ..mask_guided import MaskGuided, PenaltyStep, check_mask_options
from ..registry import register


@dataclasses.dataclass
class HintConfig:
    weight: float = 1.0             # λ
    pair_margin: float = 0.1        # δ
    mask_source: str = "lungs"
    mask_blur_sigma: float = 1.0
    warmup_epochs: int = 0

    def __post_init__(self):
        if self.weight < 0 or not 0 <= self.pair_margin < 1:
            raise ValueError(f"hint weight must be >= 0 and pair_margin in [0, 1), got "
                             f"{self.weight}, {self.pair_margin}")
        check_mask_options("hint", self)


def importances(activations: tf.Tensor, gradients: tf.Tensor) -> tf.Tensor:
    """(N, h*w) network importance per Grad-CAM cell: Σ_c mean_hw(dS/dA_c) A_c, divided by its
    largest magnitude per image."""
    z = gradcam_before_relu(activations, gradients)
    z = tf.reshape(z, [tf.shape(z)[0], -1])
    return tf.math.divide_no_nan(z, tf.reduce_max(tf.abs(z), axis=1, keepdims=True))


def ranking_loss(network: tf.Tensor, human: tf.Tensor, margin: float) -> tf.Tensor:
    """Per image: mean over the pairs (a, b) with human[a] − human[b] > margin of
    max(0, network[b] − network[a]); 0 for an image without such pairs. (N, K) inputs."""
    ranked = tf.cast(human[:, :, None] - human[:, None, :] > margin, network.dtype)  # [n, a, b]
    violation = tf.nn.relu(network[:, None, :] - network[:, :, None])             # G_b − G_a
    return tf.math.divide_no_nan(tf.reduce_sum(ranked * violation, axis=[1, 2]),
                                 tf.reduce_sum(ranked, axis=[1, 2]))


class HintStep(PenaltyStep):
    def penalties(self, x, batch):
        activations, _, d_act = score_gradients(self.cam_model, x,
                                                tf.cast(batch["label"], tf.int32), training=False)
        a, g = full_precision(activations), full_precision(d_act)
        network = importances(a, g)
        human = tf.reshape(mask_to_grid(batch["mask"], tf.shape(a)[1:3]), tf.shape(network))
        return {"hint": (self.config.weight, tf.reduce_mean(
            ranking_loss(network, human, self.config.pair_margin)))}


class Hint(MaskGuided):
    name = "hint"
    config_class = HintConfig
    step_class = HintStep

    def describe(self, report, variant):
        o = report[variant]["training"].get("hint", {})
        return ["", f"## {variant}: HINT (Selvaraju et al. 2019)", "",
                "CE + λ · the ranking loss between the true-class Grad-CAM importances of the "
                f"grid cells and the relevance mask's, λ = {o.get('weight')}, pairs whose mask "
                f"values differ by more than {o.get('pair_margin')}; masks: "
                f"{o.get('mask_source')}."]


register(Hint())

__all__ = ["Hint", "HintConfig", "HintStep", "importances", "ranking_loss"]
