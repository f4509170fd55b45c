"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017), and its Grad-CAM variant.

`rrr` trains the baseline's classifier with Ross et al.'s loss (their Eq. 1):

    L(θ) = Σ_n CE(y_n, ŷ_n)
           + λ1 Σ_n Σ_d ( A_nd · ∂/∂x_nd Σ_k log ŷ_nk )²
           + λ2 Σ_i θ_i²

A_nd = 1 where input d of image n is *irrelevant* (here: 1 − the relevance mask, the same masks
GFSR trains towards), ŷ_nk the predicted probability of class k (binary sigmoid heads: k ranges
over {p, 1 − p}), θ the trainable kernels (biases, BatchNorm scales and offsets excluded). Three
choices made for Keras, each stated: the CE and the input-gradient term are means over the batch
(Ross et al. sum; a mean keeps λ1 independent of the batch size); x is the network's input after
its preprocessing (the gradient Ross et al. take is on the model's input too); and the input
gradients are those of the inference-mode network (running BatchNorm statistics: the network
that is evaluated, and the only mode in which the gradient of Σ_n Σ_k log ŷ_nk with respect to
x_n is image n's own - in training mode BatchNorm couples the images of a batch; Ross et al.'s
networks had no BatchNorm).

`rrr_gradcam` replaces the input gradients by the Grad-CAM of the true class at the target layer
(in inference mode, exact second order, normalised per image like GFSR's): λ1 Σ_n mean_cells
(A_n ↓ · CAM_n)², A_n ↓ the irrelevance mask area-averaged onto the Grad-CAM grid - the
"RRR-GradCAM" of Friedrich et al. (Nature Machine Intelligence 2023).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from ...losses.relevance import mask_to_grid
from ...saliency.gradcam import full_precision, gradcam
from ...training.step import kernel_l2
from ..mask_guided import MaskGuided, PenaltyStep, check_mask_options
from ..registry import register


@dataclasses.dataclass
class RRRConfig:
    weight: float = 10.0            # λ1 (Ross et al. chose it so both terms have one scale)
    l2: float = 1e-4                # λ2
    explanation: str = "input_gradient"   # or "gradcam" (rrr_gradcam)
    mask_source: str = "lungs"      # where the relevant region comes from (as GFSR's)
    mask_blur_sigma: float = 1.0
    warmup_epochs: int = 0          # plain CE first (shared with the baseline's, like GFSR's)

    def __post_init__(self):
        if self.weight < 0 or self.l2 < 0:
            raise ValueError(f"rrr weight and l2 must be >= 0, got {self.weight}, {self.l2}")
        if self.explanation not in ("input_gradient", "gradcam"):
            raise ValueError(f"rrr explanation must be 'input_gradient' or 'gradcam', got "
                             f"{self.explanation!r}")
        check_mask_options("rrr", self)


def summed_log_probabilities(logits: tf.Tensor) -> tf.Tensor:
    """Σ_k log ŷ_k per image: log σ(z) + log σ(−z) for a single logit, Σ log softmax otherwise."""
    if logits.shape[-1] == 1:
        z = logits[:, 0]
        return tf.math.log_sigmoid(z) + tf.math.log_sigmoid(-z)
    return tf.reduce_sum(tf.nn.log_softmax(logits), axis=-1)


def input_gradient_penalty(cam_model, x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Ross et al.'s right-reasons term per image: Σ_d (A_d ∂ Σ_k log ŷ_k / ∂x_d)², A = 1 − mask
    (broadcast over channels), on the inference-mode network. Differentiable (double backprop)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = full_precision(cam_model(x, training=False)[1])
        total = tf.reduce_sum(summed_log_probabilities(logits))
    g = tape.gradient(total, x)
    irrelevant = 1.0 - tf.cast(mask, g.dtype)[..., None]
    return tf.reduce_sum(tf.square(irrelevant * g), axis=[1, 2, 3])


def gradcam_penalty(cam_model, x: tf.Tensor, mask: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The Grad-CAM variant per image: mean over cells of (A↓ · CAM)², CAM of the true class."""
    cam = gradcam(cam_model, x, tf.cast(labels, tf.int32), training=False)[0]
    irrelevant = 1.0 - mask_to_grid(mask, tf.shape(cam)[1:3])
    return tf.reduce_mean(tf.square(irrelevant * cam), axis=[1, 2])


class RRRStep(PenaltyStep):
    def penalties(self, x, batch):
        if self.config.explanation == "gradcam":
            penalty = gradcam_penalty(self.cam_model, x, batch["mask"], batch["label"])
        else:
            penalty = input_gradient_penalty(self.cam_model, x, batch["mask"])
        return {"right_reasons": (self.config.weight, tf.reduce_mean(penalty))}

    def regularisers(self):
        l2 = self.config.l2
        return {"l2": (l2, kernel_l2(self.model) if l2 > 0 else tf.zeros(()))}


class RRR(MaskGuided):
    name = "rrr"
    config_class = RRRConfig
    step_class = RRRStep
    fields_key = "rrr"

    def __init__(self, name: str = "rrr", explanation: str = "input_gradient"):
        self.name, self.explanation = name, explanation

    def make_config(self, options=None):
        return super().make_config({"explanation": self.explanation, **(options or {})})

    def describe(self, report, variant):
        o = report[variant]["training"].get("rrr", {})
        what = ("the true-class Grad-CAM" if o.get("explanation") == "gradcam"
                else "the input gradients of Σ_k log p_k")
        return ["", f"## {variant}: Right for the Right Reasons (Ross et al. 2017)", "",
                f"CE + λ1 · Σ ({what} outside the relevance mask)² + λ2 · Σ θ², λ1 = "
                f"{o.get('weight')}, λ2 = {o.get('l2')}; masks: {o.get('mask_source')}."]


register(RRR())
register(RRR("rrr_gradcam", "gradcam"))

__all__ = ["RRR", "RRRConfig", "RRRStep", "input_gradient_penalty", "gradcam_penalty",
           "summed_log_probabilities"]
