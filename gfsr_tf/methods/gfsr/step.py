"""The GFSR training step: the classifier's own Grad-CAM, computed inside the outer tape, is
pulled towards the relevance mask (exact: through the channel weights; first order: weights as
constants; fused: the CAM from the CE backward pass, `fused.py`). The extensions of
`RelevanceConfig` (counterfactual backgrounds, logit consistency, outside attribution, input
gradients) ride on the same pass: see `losses/counterfactual.py`."""
from __future__ import annotations

import tensorflow as tf

from ...losses import (consistency_penalty, counterfactual_batch, input_gradient_penalty,
                       negative_evidence, outside_attribution, outside_evidence,
                       relevance_loss)
from ...saliency.gradcam import (cam_from_gradients, full_precision, live_cells, saliency_rule,
                                 score_gradients)
from ...training.step import TrainStep, accuracy, classification_loss
from .config import RelevanceConfig

METRICS = ("loss", "ce", "relevance", "input_grad", "consistency", "outside_attribution",
           "negative_evidence", "counter_evidence", "outside_evidence", "acc")


class GfsrStep(TrainStep):
    def __init__(self, model, optimizer, *, config: RelevanceConfig, target_layer: str,
                 batch_size: int = 32, **kwargs):
        super().__init__(model, optimizer, logits_layer=target_layer, **kwargs)
        self.rel = config
        self.guided = config.guided
        self.targets = ("mask",) if self.guided else ()
        # 0 during the warm-up, then (ramped up to) 1: scales the relevance loss and the
        # extension penalties
        self.on = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        # the same for the decision constraints (counterfactual images, consistency), which may
        # start later (consistency_delay_epochs)
        self.on_decision = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self._fused = None
        # batchnorm "held"/"frozen": the preprocessed training images the statistics are
        # re-estimated on (prepare) and whether they are held / frozen now (after the warm-up)
        self._bn_images, self._bn_fixed = None, False
        self._batch_size = batch_size
        if self.guided and config.fused:
            if self.mixed_precision:
                raise ValueError("the fused step is not combined with mixed precision")
            from .fused import split_at
            self._fused = split_at(model, target_layer)

    def ramp(self, epoch, start):
        past = epoch - start
        return 0.0 if past <= 0 else min(1.0, past / self.rel.ramp_epochs) \
            if self.rel.ramp_epochs else 1.0

    def prepare(self, train, batch_size: int | None = None):
        """Keeps the preprocessed training images the held / frozen statistics are re-estimated
        on, in batches of `batch_size` (default: the one the step was built with)."""
        self._batch_size = batch_size or self._batch_size
        if self.rel.batchnorm == "batch":
            return
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError(f"gfsr batchnorm={self.rel.batchnorm!r} re-estimates the "
                             "statistics on one replica: it is not combined with tf.distribute "
                             "yet")
        self._bn_images = self.preprocess(train.images)

    def trace_key(self):
        return self._bn_fixed

    def release(self):
        """After training with held statistics: the layers' own momenta back (the statistics
        stay as they are)."""
        if self._bn_fixed and self.rel.batchnorm == "held":
            from ...training.batchnorm import release_batchnorm
            release_batchnorm(self.model)
        self._bn_fixed = False

    def on_epoch(self, epoch):
        on = self.ramp(epoch, self.rel.warmup_epochs)
        decision = self.ramp(epoch, self.rel.warmup_epochs + self.rel.consistency_delay_epochs)
        self.on.assign(on)
        self.on_decision.assign(decision)
        logged = {"lambda": self.rel.weight * on,
                  **({"consistency_weight": self.rel.consistency_weight * decision}
                     if self.rel.consistency_weight else {})}
        if self._bn_images is not None and epoch > self.rel.warmup_epochs:
            from ...training.batchnorm import freeze_batchnorm, hold_batchnorm, \
                recalibrate_batchnorm
            # re-estimated from this epoch's starting weights, so a resumed run re-estimates
            # the same statistics as an uninterrupted one
            recalibrate_batchnorm(self.model, self._bn_images, self._batch_size)
            if self.rel.batchnorm == "frozen":
                freeze_batchnorm(self.model)
            else:
                hold_batchnorm(self.model)
            self._bn_fixed = True
            logged[f"batchnorm_{self.rel.batchnorm}"] = 1.0
        return logged

    def _inputs(self, x, labels, masks):
        """The images the step trains on: x, x with counterfactual backgrounds (extension a), or
        both stacked (extension b), with their labels and masks."""
        cfg = self.rel
        if not (cfg.counterfactual_rate > 0 or cfg.consistency_weight > 0):
            return x, labels, masks
        dilation = int(round(cfg.replace_dilation * x.shape[1]))
        replace = None
        if cfg.consistency_weight == 0 and cfg.counterfactual_rate < 1:
            # seeded by the step counter: a resumed run draws the same replacements
            seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int32), 7])
            replace = tf.random.stateless_uniform(tf.shape(labels), seed) < cfg.counterfactual_rate
        x_cf = counterfactual_batch(x, masks, dilation, replace)
        if cfg.consistency_weight == 0:  # augmentation, from the end of the warm-up on
            return tf.where(self.on_decision > 0, x_cf, x), labels, masks
        stacked = (tf.concat([x, x_cf], 0), tf.concat([labels, labels], 0),
                   tf.concat([masks, masks], 0))
        if cfg.warmup_epochs == 0:
            return stacked
        # warm-up epochs train on x alone (the batch doubles only once the guidance is on)
        return tf.cond(self.on_decision > 0, lambda: stacked, lambda: (x, labels, masks))

    def __call__(self, batch):
        x, labels = self.preprocess(batch["image"]), batch["label"]
        masks = batch.get("mask")
        cfg = self.rel
        zero = tf.zeros(())
        terms = {"relevance": zero, "input_grad": zero, "consistency": zero,
                 "outside_attribution": zero, "negative_evidence": zero,
                 "counter_evidence": zero, "outside_evidence": zero}
        if self._fused is not None:
            from .fused import fused_gradients
            variables = self.model.trainable_variables
            grads, logits, ce, rel, _ = fused_gradients(*self._fused, variables, x, labels, masks,
                                                        cfg.weight * self.on, cfg)
            self.apply(grads, variables)
            terms["relevance"] = rel
            return self._metrics(ce + cfg.weight * self.on * rel, ce, terms, logits, labels)
        inputs, targets, target_masks = self._inputs(x, labels, masks)
        n = tf.shape(x)[0]
        # the terms read from the Grad-CAM's activations and channel weights
        on_cam = cfg.weight > 0 or cfg.negative_evidence_weight > 0 or \
            cfg.counter_evidence_weight > 0 or cfg.outside_evidence_weight > 0
        needs_gradients = on_cam or cfg.input_gradient_weight > 0 or \
            cfg.outside_attribution_weight > 0
        with tf.GradientTape() as tape:
            if needs_gradients:
                # The CAM explains the true class by default; "predicted" follows the model.
                cls = targets if cfg.cam_class == "true" else None
                inference = cfg.cam_mode == "inference"
                # cam_images "clean": the map terms read the clean half of a doubled batch
                # (in inference mode the extra pass then runs on it alone)
                clean = cfg.cam_images == "clean"
                cam_inputs = inputs
                if clean and inference:
                    cam_inputs, cls = inputs[:n], None if cls is None else cls[:n]
                out = score_gradients(self.cam_model, cam_inputs, cls, training=not inference,
                                      input_gradients=cfg.input_gradient_weight > 0)
                logits = out[1]  # every image's (training mode; replaced in inference mode)
                if clean:
                    target_masks = target_masks[:n]
                    out = tuple(t[:n] for t in out)
                activations, d_act = out[0], out[2]
                if inference:  # the CE still trains on batch statistics
                    _, logits = self.cam_model(inputs, training=True)
                if on_cam:
                    a = full_precision(activations)
                    g = full_precision(d_act if cfg.second_order else tf.stop_gradient(d_act))
                    if cfg.cam_cells == "live":
                        a, g = live_cells(a), live_cells(g)
                if cfg.weight > 0:  # the paper's Grad-CAM, or LayerCAM (extension)
                    terms["relevance"] = tf.reduce_mean(relevance_loss(
                        saliency_rule(cfg.saliency)(a, g), target_masks, cfg.alpha, cfg.beta,
                        cfg.focal_gamma))
                if cfg.negative_evidence_weight > 0:
                    terms["negative_evidence"] = tf.reduce_mean(
                        negative_evidence(a, g, target_masks))
                if cfg.counter_evidence_weight > 0:  # -g: the score's sign flipped (config.py)
                    terms["counter_evidence"] = tf.reduce_mean(relevance_loss(
                        cam_from_gradients(a, -g), target_masks, cfg.alpha, cfg.beta,
                        cfg.focal_gamma))
                if cfg.outside_evidence_weight > 0:
                    terms["outside_evidence"] = tf.reduce_mean(outside_evidence(a, g,
                                                                                target_masks))
                if cfg.input_gradient_weight > 0:
                    terms["input_grad"] = tf.reduce_mean(input_gradient_penalty(out[3],
                                                                                target_masks))
                if cfg.outside_attribution_weight > 0:
                    terms["outside_attribution"] = tf.reduce_mean(outside_attribution(
                        full_precision(activations), full_precision(d_act), target_masks))
            else:
                _, logits = self.cam_model(inputs, training=True)
            logits = full_precision(logits)
            per_image = classification_loss(logits, targets, self.cam_model.multi_label)
            if cfg.consistency_weight > 0:  # CE(x) + CE(x~) + w (z(x) - z(x~))^2
                # (during a warm-up the batch holds x alone: the x~ terms are 0)
                counterfactual = per_image[n:]
                ce = tf.reduce_mean(per_image[:n]) + tf.math.divide_no_nan(
                    tf.reduce_sum(counterfactual), tf.cast(tf.size(counterfactual), tf.float32))
                terms["consistency"] = tf.cond(
                    tf.shape(logits)[0] > n,
                    lambda: tf.reduce_mean(consistency_penalty(logits[:n], logits[n:])),
                    lambda: tf.zeros(()))
            else:
                ce = tf.reduce_mean(per_image)
            loss = ce + self.on * (cfg.weight * terms["relevance"]
                                   + cfg.input_gradient_weight * terms["input_grad"]
                                   + cfg.outside_attribution_weight
                                   * terms["outside_attribution"]
                                   + cfg.negative_evidence_weight
                                   * terms["negative_evidence"]
                                   + cfg.counter_evidence_weight
                                   * terms["counter_evidence"]
                                   + cfg.outside_evidence_weight
                                   * terms["outside_evidence"]) \
                + self.on_decision * cfg.consistency_weight * terms["consistency"]
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        return self._metrics(loss, ce, terms, logits[:n], labels)

    def _metrics(self, loss, ce, terms, logits, labels):
        # the batch's (training-mode) logits, for callers that update their own metrics inside
        # the same traced step (GuidedModel.train_step)
        self.batch_logits = logits
        return {"loss": loss, "ce": ce, **terms, "acc": accuracy(logits, labels)}
