"""GFSR as a Keras model: `GuidedModel` wraps any Keras image classifier and trains it with
`compile()` / `fit()`, callbacks and all, through the same `GfsrStep` the project's trainer runs
(one implementation: the step computes the in-graph Grad-CAM, the relevance loss and the
extension terms and applies the gradients).

    guided = gfsr_tf.GuidedModel(classifier, layer="conv3_block4_out", relevance_weight=1.0)
    guided.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    guided.fit(train_ds, validation_data=val_ds, epochs=20, callbacks=[...])
    guided.classifier.save("model.keras")   # a plain Keras model: loads without gfsr_tf

A dataset yields `({"image": x, "mask": m}, y)`: x what the classifier takes (its own
preprocessing applied: the wrapper feeds it unchanged), m (B, H, W) relevance masks in [0, 1] at
any resolution (resized to the Grad-CAM grid), y integer class labels. The mask is needed for
training when a relevance or extension term is on; at validation it is optional (validation
reports the cross-entropy and the compiled metrics). `relevance_weight` is GFSR's lambda: the
same setting as `RelevanceConfig.weight` and the command line's `--lambda`. Other
`RelevanceConfig` options pass as keywords; `GuidedModel.gfsr_plus(classifier, layer)` builds
the main job's guided default ("GFSR loss + logit consistency under counterfactual
backgrounds", an extension beyond the paper).
"""
from __future__ import annotations

import dataclasses
import types

import keras
import numpy as np
import tensorflow as tf

from ...config import GFSR_PAPER_LOSS, GFSR_PLUS_ADDITIONS, checked_options
from ...saliency.gradcam import full_precision
from ...training.step import classification_loss
from .config import RelevanceConfig
from .step import GfsrStep


class GuidanceSchedule(keras.callbacks.Callback):
    """Sets the step's warm-up / ramp weights at the start of each epoch (GfsrStep.on_epoch,
    epochs counted from 1 as in the trainer). `GuidedModel.fit` adds it."""

    def __init__(self, guided: "GuidedModel"):
        super().__init__()
        self.guided = guided

    def on_epoch_begin(self, epoch, logs=None):
        step = self.guided.step
        before = step.trace_key()
        step.on_epoch(epoch + 1)
        if step.trace_key() != before:   # statistics now held (momentum 1): trace again
            self.guided.make_train_function(force=True)


@keras.saving.register_keras_serializable(package="gfsr_tf")
class GuidedModel(keras.Model):
    def __init__(self, classifier: keras.Model, layer: str | None = None,
                 relevance_weight: float = 1.0, **relevance_options):
        super().__init__(name=f"guided_{classifier.name}")
        self.classifier = classifier
        self.relevance = RelevanceConfig(**checked_options(
            "gfsr", RelevanceConfig, {"weight": relevance_weight, **relevance_options}))
        if self.relevance.fused:
            raise ValueError("GuidedModel runs the exact or first-order GFSR step, not the fused "
                             "one (fused=True is the trainer's option)")
        if self.relevance.batchnorm == "frozen":
            raise ValueError("GuidedModel trains with batchnorm='batch' or 'held'; 'frozen' "
                             "is the project trainer's option")
        self.layer = layer
        # built here, outside any traced function: the step owns tf.Variables (the ramp
        # weights) and its CamModel view of the classifier
        self.step = GfsrStep(classifier, None, config=self.relevance, target_layer=layer,
                             preprocessor="none")
        self.step.on_epoch(10 ** 6)   # full weights unless a schedule (fit adds it) says less
        self._trackers = {k: keras.metrics.Mean(name=k) for k in
                          ("loss", "ce", "relevance", "consistency")}
        # the wrapper owns no weights of its own: built when the classifier is (callbacks such
        # as BackupAndRestore need a built model before fit)
        self.built = classifier.built

    @classmethod
    def gfsr_plus(cls, classifier: keras.Model, layer: str | None = None, **overrides):
        """The main job's guided default (presets/benchmark.GFSR_PLUS without its shared
        warm-up): GFSR's loss at lambda 3 on the inference-mode Grad-CAM + the negative-evidence
        penalty + counterfactual consistency."""
        options = {**GFSR_PAPER_LOSS, **GFSR_PLUS_ADDITIONS, **overrides}
        return cls(classifier, layer, relevance_weight=options.pop("weight"), **options)

    def call(self, inputs, training=False):
        x = inputs["image"] if isinstance(inputs, dict) else inputs
        return self.classifier(x, training=training)

    def compile(self, optimizer="adam", metrics=None, jit_compile=False, **kwargs):
        """Keras' compile; the loss is the method's (no `loss=`). XLA is off by default: the
        exact step nests a gradient tape, which XLA compiles only on some backends (pass
        jit_compile=True to try)."""
        if "loss" in kwargs:
            raise ValueError("GuidedModel trains GFSR's own loss: compile it without loss=")
        super().compile(optimizer=optimizer, metrics=metrics, jit_compile=jit_compile, **kwargs)
        self.step.optimizer = self.optimizer
        self.optimizer.build(self.classifier.trainable_variables)

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if not any(isinstance(c, GuidanceSchedule) for c in callbacks):
            callbacks.append(GuidanceSchedule(self))
        data = args[0] if args else kwargs.get("x")
        held = self.relevance.batchnorm == "held"
        if (self.relevance.bn_recalibration or held) and not isinstance(data, tf.data.Dataset):
            raise ValueError("GuidedModel(bn_recalibration=True or batchnorm='held') re-reads "
                             "the training data: pass it as a tf.data.Dataset")
        if held:    # the images the statistics are re-estimated on at each guided epoch
            images, batch_size = self._images(data)
            self.step.prepare(types.SimpleNamespace(images=images), batch_size)
        try:
            history = super().fit(*args, callbacks=callbacks, **kwargs)
        finally:
            self.step.release()
        if self.relevance.bn_recalibration:
            self.recalibrate(data)
        return history

    def _images(self, dataset):
        """The dataset's images, in order, and its batch size."""
        batches = [self._unpack(b)[0]["image"].numpy() for b in dataset]
        return np.concatenate(batches), len(batches[0])

    def recalibrate(self, dataset) -> dict:
        """Re-estimate the classifier's BatchNorm statistics on the dataset's images, batch by
        batch as `fit` saw them (`training.batchnorm`; what `bn_recalibration` does at the end of
        fit, and what gfsr_plus's report calls "BatchNorm statistics re-estimated")."""
        from ...training.batchnorm import recalibrate_batchnorm
        return recalibrate_batchnorm(self.classifier, *self._images(dataset))

    @property
    def metrics(self):
        return list(self._trackers.values()) + [m for m in super().metrics
                                                if m.name not in self._trackers]

    def _unpack(self, data):
        inputs, y = data[0], data[1]
        if not isinstance(inputs, dict):
            inputs = {"image": inputs}
        return inputs, y

    def _probabilities(self, logits):
        """The classifier's output from its logits (its head's activation)."""
        last = self.step.cam_model.model.layers[-1]
        activation = getattr(last, "activation", None)
        return logits if activation is None else activation(logits)

    def _log(self, y, logits, values: dict):
        """Logs: the loss terms this step computed (the trackers of the others stay out of the
        logs: validation computes no relevance loss) and the compiled metrics."""
        for key, tracker in self._trackers.items():
            if key in values:
                tracker.update_state(values[key])
        logs = self.compute_metrics(None, y, self._probabilities(logits))
        return {k: v for k, v in logs.items() if k not in self._trackers or k in values}

    def train_step(self, data):
        inputs, y = self._unpack(data)
        batch = {"image": inputs["image"], "label": y}
        if self.step.guided:
            if "mask" not in inputs:
                raise ValueError("GuidedModel: the training data needs a 'mask' beside 'image' "
                                 "(the relevance masks); yield ({'image': x, 'mask': m}, y)")
            batch["mask"] = inputs["mask"]
        out = self.step(batch)
        # the compiled metrics see the batch's training-mode logits (no second forward pass)
        return self._log(y, self.step.batch_logits, out)

    def test_step(self, data):
        inputs, y = self._unpack(data)
        _, logits = self.step.cam_model(self.step.preprocess(inputs["image"]), training=False)
        logits = full_precision(logits)
        ce = tf.reduce_mean(classification_loss(logits, y, self.step.cam_model.multi_label))
        return self._log(y, logits, {"loss": ce, "ce": ce})

    def get_config(self):
        """The wrapper saves whole (ModelCheckpoint, `guided.save("guided.keras")`; loading it
        needs `import gfsr_tf`). To deploy, save `guided.classifier`: a plain Keras model."""
        options = dataclasses.asdict(self.relevance)
        return {"classifier": keras.saving.serialize_keras_object(self.classifier),
                "layer": self.layer, "relevance_weight": options.pop("weight"), **options}

    def compile_from_config(self, config):
        """Recompile a loaded wrapper with its saved optimizer and metrics (Keras skips this
        for models that override `compile`), so that a loaded checkpoint trains on."""
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        self.compile(**{k: v for k, v in config.items() if k in ("optimizer", "metrics")})

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        classifier = keras.saving.deserialize_keras_object(config.pop("classifier"))
        return cls(classifier, **config)


__all__ = ["GuidedModel", "GuidanceSchedule"]
