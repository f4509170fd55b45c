"""The GFSR training step: the classifier's own Grad-CAM, computed inside the outer tape, is
pulled towards the relevance mask (exact: through the channel weights; first order: weights as
constants; fused: the CAM from the CE backward pass, `fused.py`)."""
from __future__ import annotations

import tensorflow as tf

from ...losses import input_gradient_penalty, relevance_loss
from ...saliency.gradcam import full_precision, gradcam
from ...training.step import TrainStep, accuracy, classification_loss
from .config import RelevanceConfig


class GfsrStep(TrainStep):
    def __init__(self, model, optimizer, *, config: RelevanceConfig, target_layer: str,
                 **kwargs):
        super().__init__(model, optimizer, logits_layer=target_layer, **kwargs)
        self.rel = config
        self.guided = config.guided
        self.targets = ("mask",) if self.guided else ()
        self.lam = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self._fused = None
        if self.guided and config.fused:
            if self.mixed_precision:
                raise ValueError("the fused step is not combined with mixed precision")
            from .fused import split_at
            self._fused = split_at(model, target_layer)

    def on_epoch(self, epoch):
        on = self.rel.weight if epoch > self.rel.warmup_epochs else 0.0
        self.lam.assign(on)
        return {"lambda": on}

    def __call__(self, batch):
        x, labels = self.preprocess(batch["image"]), batch["label"]
        masks = batch.get("mask")
        rel, igp = tf.zeros(()), tf.zeros(())
        if self._fused is not None:
            from .fused import fused_gradients
            variables = self.model.trainable_variables
            grads, logits, ce, rel, _ = fused_gradients(*self._fused, variables, x, labels, masks,
                                                        self.lam, self.rel)
            self.optimizer.apply_gradients(zip(grads, variables))
            return self._metrics(ce + self.lam * rel, ce, rel, igp, logits, labels)
        with tf.GradientTape() as tape:
            if self.guided:
                use_x_grad = self.rel.input_gradient_weight > 0
                # The CAM explains the true class by default; "predicted" follows the model.
                cls = labels if self.rel.cam_class == "true" else None
                out = gradcam(self.cam_model, x, cls, training=True,
                              second_order=self.rel.second_order, input_gradients=use_x_grad)
                cam, logits = out[0], out[1]
                rel = tf.reduce_mean(relevance_loss(cam, masks, self.rel.alpha, self.rel.beta,
                                                    self.rel.focal_gamma))
                if use_x_grad:
                    igp = tf.reduce_mean(input_gradient_penalty(out[3], masks))
            else:
                _, logits = self.cam_model(x, training=True)
            logits = full_precision(logits)
            ce = tf.reduce_mean(classification_loss(logits, labels))
            loss = ce + self.lam * rel + self.rel.input_gradient_weight * igp
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        return self._metrics(loss, ce, rel, igp, logits, labels)

    @staticmethod
    def _metrics(loss, ce, rel, igp, logits, labels):
        return {"loss": loss, "ce": ce, "relevance": rel, "input_grad": igp,
                "acc": accuracy(logits, labels)}
