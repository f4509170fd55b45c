"""What the mask-guided competitors share (RRR, HINT, GAIN): the baseline's classifier, a
relevance mask per training image from the same guidance as GFSR's, a penalty switched on after
optional plain warm-up epochs (shared with the baseline's), and the method's options recorded in
report.json under its own key. Each method's loss lives in its own folder."""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from ..config import GUIDANCE_SOURCES
from ..saliency.gradcam import full_precision
from ..training.step import TrainStep, accuracy, classification_loss
from .baseline import Baseline


def check_mask_options(method: str, config) -> None:
    """The options every mask-guided config has: mask_source, warmup_epochs."""
    if config.mask_source not in GUIDANCE_SOURCES:
        raise ValueError(f"{method} mask_source must be one of {', '.join(GUIDANCE_SOURCES)}, "
                         f"got {config.mask_source!r}")
    if config.warmup_epochs < 0:
        raise ValueError(f"{method} warmup_epochs must be >= 0, got {config.warmup_epochs}")


class PenaltyStep(TrainStep):
    """CE of the training-mode network + Σ weight · penalty, the penalties off (`self.on` = 0)
    for `config.warmup_epochs` plain epochs. A method implements `penalties` (and, for terms
    that stay on through the warm-up, `regularisers`); each term is logged under its name."""
    targets = ("mask",)

    def penalties(self, x, batch) -> dict:
        """{name: (weight, mean value over the batch)} of the guidance terms."""
        raise NotImplementedError

    def regularisers(self) -> dict:
        """{name: (weight, value)} of terms on from the first step (e.g. weight decay)."""
        return {}

    def __call__(self, batch):
        x, labels = self.preprocess(batch["image"]), batch["label"]
        with tf.GradientTape() as tape:
            _, logits = self.cam_model(x, training=True)
            logits = full_precision(logits)
            ce = tf.reduce_mean(classification_loss(logits, labels, self.cam_model.multi_label))
            guided, always = self.penalties(x, batch), self.regularisers()
            loss = ce + self.on * tf.add_n([tf.zeros(())] + [w * v for w, v in guided.values()]) \
                + tf.add_n([tf.zeros(())] + [w * v for w, v in always.values()])
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        return {"loss": loss, "ce": ce, **{k: v for k, (_, v) in {**guided, **always}.items()},
                "acc": accuracy(logits, labels)}

    def __init__(self, model, optimizer, *, config, target_layer=None, **kwargs):
        super().__init__(model, optimizer, logits_layer=target_layer, **kwargs)
        self.config = config
        self.on = tf.Variable(0.0 if config.warmup_epochs else 1.0, trainable=False)

    def on_epoch(self, epoch):
        self.on.assign(0.0 if epoch <= self.config.warmup_epochs else 1.0)
        return {"lambda": float(self.on.numpy()) * self.config.weight}


class MaskGuided(Baseline):
    """A method = its config class, its `PenaltyStep` subclass and the report.json key its
    options are recorded under (`fields_key`)."""
    step_class: type = PenaltyStep
    fields_key: str = ""

    def guidance(self, config):
        return config.mask_source, config.mask_blur_sigma

    def plain_epochs(self, config):
        return config.warmup_epochs

    def make_step(self, model, optimizer, study, config):
        return self.step_class(model, optimizer, config=config,
                               target_layer=self.layer_for(study, config),
                               preprocessor=self.preprocessor,
                               mixed_precision=study.train.mixed_precision)

    def training_fields(self, config):
        return {self.fields_key or self.name: dataclasses.asdict(config)}
