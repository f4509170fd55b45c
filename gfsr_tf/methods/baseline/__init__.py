"""The baseline: the ResNet50 classifier trained on cross-entropy alone (GFSR with lambda = 0,
without the inner tape). GFSR subclasses it, so both build the same model from the same seed."""
from __future__ import annotations

import tensorflow as tf

from ...models import build_classifier
from ...training.step import ClassificationStep
from ..base import Method
from ..registry import register


class BaselineStep(ClassificationStep):
    def __call__(self, batch):
        out = super().__call__(batch)
        # zeros kept so baseline and GFSR histories have the same keys (report.json is add-only)
        return {**out, "relevance": tf.zeros(()), "input_grad": tf.zeros(())}

    def on_epoch(self, epoch):
        return {"lambda": 0.0}


class Baseline(Method):
    name = "baseline"

    def layer_for(self, study, config):
        return study.model.target_layer

    def build_model(self, study, config, num_classes, input_shape, warnings):
        m = study.model
        return build_classifier(num_classes, input_shape, m.weights, dense_units=m.dense_units,
                                dropout=m.dropout, bn_momentum=m.bn_momentum,
                                seed=study.train.seed, warnings=warnings,
                                mixed_precision=study.train.mixed_precision,
                                backbone=m.backbone, multi_label=m.multi_label,
                                pooling=m.pooling)

    def make_step(self, model, optimizer, study, config):
        return BaselineStep(model, optimizer, preprocessor=self.preprocessor,
                            logits_layer=self.layer_for(study, config),
                            mixed_precision=study.train.mixed_precision)

    def training_fields(self, config):
        return {"relevance": {"weight": 0.0, "input_gradient_weight": 0.0}}


register(Baseline())
