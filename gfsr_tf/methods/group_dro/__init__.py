"""Group DRO (Sagawa, Koh, Hashimoto & Liang, ICLR 2020): minimise the worst group's loss.

Groups g = class × marker status (4 on the benchmarks, where every image's marker status is
known; real data without a planted marker carry no groups and are refused). Their online
algorithm (Algorithm 1), per step on a batch:

    ℓ_g = mean CE of the batch's images in group g
    q_g ← q_g · exp(η ℓ_g)   for the groups present in the batch;   q ← q / Σ q
    θ   ← θ − lr · ∇_θ Σ_g q_g ℓ_g

plus λ2 Σ θ² over the kernels (their "strong ℓ2 penalty"; 0 by default here). q starts uniform
and is part of the training checkpoint, so a resumed run equals an uninterrupted one. (Their
group adjustment C / √n_g is not implemented: C = 0, the setting of their main results.) The group
labels are the annotation budget: one bit per training image (the marker's presence).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ...saliency.gradcam import full_precision
from ...training.step import TrainStep, accuracy, classification_loss, kernel_l2
from ..baseline import Baseline
from ..registry import register

GROUPS = 4   # (class 0, unmarked), (class 0, marked), (class 1, unmarked), (class 1, marked)


@dataclasses.dataclass
class GroupDROConfig:
    eta: float = 0.01               # step size of the group weights
    l2: float = 0.0

    def __post_init__(self):
        for key in ("eta", "l2"):
            if getattr(self, key) < 0:
                raise ValueError(f"group_dro {key} must be >= 0, got {getattr(self, key)}")


def group_of(labels, marked):
    """Group index 2·class + marker status."""
    return 2 * tf.cast(labels, tf.int32) + tf.cast(marked, tf.int32)


class GroupDROStep(TrainStep):
    batch_fields = {"marked": ("has_marker", "int32")}

    def __init__(self, model, optimizer, *, config: GroupDROConfig, target_layer=None,
                 **kwargs):
        super().__init__(model, optimizer, logits_layer=target_layer, **kwargs)
        self.config = config
        self.q = tf.Variable(tf.fill([GROUPS], 1.0 / GROUPS), trainable=False, name="group_q")

    def state(self):
        return {"group_q": self.q}

    def __call__(self, batch):
        cfg = self.config
        x = self.preprocess(batch["image"])
        groups = group_of(batch["label"], batch["marked"])
        onehot = tf.one_hot(groups, GROUPS)                              # (B, G)
        present = tf.reduce_sum(onehot, 0) > 0
        with tf.GradientTape() as tape:
            _, logits = self.cam_model(x, training=True)
            logits = full_precision(logits)
            per_image = classification_loss(logits, batch["label"])
            sums = tf.reduce_sum(onehot * per_image[:, None], 0)
            group_loss = sums / tf.maximum(tf.reduce_sum(onehot, 0), 1.0)
            # the exponentiated-gradient update of q uses the losses' values only
            q = self.q * tf.where(present, tf.exp(cfg.eta * tf.stop_gradient(group_loss)), 1.0)
            q = q / tf.reduce_sum(q)
            robust = tf.reduce_sum(q * tf.where(present, group_loss, 0.0))
            decay = kernel_l2(self.model) if cfg.l2 > 0 else tf.zeros(())
            loss = robust + cfg.l2 * decay
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        self.q.assign(q)
        worst = tf.reduce_max(tf.where(present, group_loss, -np.inf))
        return {"loss": loss, "ce": tf.reduce_mean(per_image), "worst_group_ce": worst,
                **{f"q_{g}": q[g] for g in range(GROUPS)}, "acc": accuracy(logits, batch["label"])}


class GroupDRO(Baseline):
    name = "group_dro"
    config_class = GroupDROConfig

    def make_step(self, model, optimizer, study, config):
        return GroupDROStep(model, optimizer, config=config,
                            target_layer=self.layer_for(study, config),
                            preprocessor=self.preprocessor,
                            mixed_precision=study.train.mixed_precision)

    def training_fields(self, config):
        return {"group_dro": dataclasses.asdict(config)}

    def describe(self, report, variant):
        o = report[variant]["training"].get("group_dro", {})
        return ["", f"## {variant}: Group DRO (Sagawa et al. 2020)", "",
                "Minimises the worst of 4 groups' losses (class × marker status; the group "
                f"labels are its annotation budget): η = {o.get('eta')}, λ2 = {o.get('l2')}."]


register(GroupDRO())

__all__ = ["GroupDRO", "GroupDROConfig", "GroupDROStep", "group_of"]
