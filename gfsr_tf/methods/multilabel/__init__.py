"""A multi-label classifier (SegX's ResNet50 / DenseNet121): K sigmoid units trained with the
mean BCE over images x classes on `ImageSet.label_matrix()`, no guided focus. Decisions use a
per-class threshold tuned on validation (`evaluation.classification.multilabel_thresholds`), so
the predicted set is {j : p_j > tau_j}. The backbone chooses the preprocessor and the Grad-CAM
layer (`models.classifier.BACKBONE_CARD`), recorded in the model card."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...models.classifier import BACKBONE_CARD, BACKBONES, build_classifier
from ...training.step import ClassificationStep
from ..base import Method
from ..registry import register


@dataclass
class MultiLabelConfig:
    backbone: str = "resnet50"         # resnet50 | densenet121 | small_cnn
    pooling: str = "avg"               # SegX's head: GAP -> Dense(256, ReLU) -> Dense(K)
    dense_units: int = 256
    dropout: float = 0.0
    threshold_rule: str = "f1"         # per-class tau on validation: "f1" (max F1) | "youden"
    # None: the backbone's last conv block (BACKBONE_CARD; SegX's). Its grid is the input side
    # / 32 - 7 x 7 at SegX's 224 px, 2 x 2 at 64 px - so small inputs name a stride-8 layer
    # (conv3_block4_out, pool3_relu) to keep the paper's grid resolution.
    gradcam_layer: str | None = None

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"multilabel backbone must be one of {', '.join(BACKBONES)}, got "
                             f"{self.backbone!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"multilabel pooling must be max or avg, got {self.pooling!r}")
        if self.threshold_rule not in ("f1", "youden"):
            raise ValueError(f"multilabel threshold_rule must be f1 or youden, got "
                             f"{self.threshold_rule!r}")


class MultiLabel(Method):
    name = "multilabel"
    config_class = MultiLabelConfig

    def preprocessor_for(self, config):
        return BACKBONE_CARD[config.backbone][0]

    def layer_for(self, study, config):
        return config.gradcam_layer or BACKBONE_CARD[config.backbone][1]

    def build_model(self, study, config, num_classes, input_shape, warnings):
        return build_classifier(num_classes, input_shape, study.model.weights,
                                dense_units=config.dense_units, dropout=config.dropout,
                                bn_momentum=study.model.bn_momentum, seed=study.train.seed,
                                warnings=warnings, mixed_precision=study.train.mixed_precision,
                                backbone=config.backbone, head="multilabel",
                                pooling=config.pooling)

    def make_step(self, model, optimizer, study, config):
        return ClassificationStep(model, optimizer, preprocessor=self.preprocessor_for(config),
                                  logits_layer=self.layer_for(study, config),
                                  mixed_precision=study.train.mixed_precision)

    def training_fields(self, config):
        return {"multilabel": dataclasses.asdict(config)}

    def describe(self, report, variant):
        o = report[variant]["training"].get("multilabel", {})
        return ["", f"## {variant}: multi-label classifier", "",
                f"{o.get('backbone')} backbone, {o.get('pooling')} pooling, one sigmoid per "
                f"class (mean BCE); per-class thresholds by {o.get('threshold_rule')} on "
                "validation."]


register(MultiLabel())

__all__ = ["MultiLabel", "MultiLabelConfig"]
