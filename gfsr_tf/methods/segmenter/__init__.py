"""SegX's segmenter: the plain U-Net (`models.unet`) trained towards a clinical region - the
benchmark's lung fields, HAM10000's lesion masks - with lambda * BCE + (1 - lambda) * soft Dice
(`losses.segmentation`), through the generic loop. Its step validates the segmentation itself
(val_loss, val_dice, val_iou at p > 0.5), so the study selects best weights on val_loss and
stops early (SegX: patience 10) with `train.monitor="val_loss"`,
`train.early_stopping_patience`. Its explanation is its own output: the region probability.
Its targets are the region masks themselves (`region_of`), which the SegX study passes to the
trainer (`study.py`); the study's relevance masks are blurred, max-normalised, and give the
benchmark's normal images their lungs as "lesions"."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ...losses.segmentation import bce_dice_loss, dice_iou
from ...models.unet import build_unet, check_side, logits_model
from ...preprocessing import get_preprocessor
from ...saliency.gradcam import Explanation
from ...training.step import TrainStep
from ..base import Method
from ..registry import register

REGIONS = ("lungs", "lesions")


@dataclass
class SegmenterConfig:
    region: str = "lungs"             # the ImageSet field to segment: lungs | lesions
    bce_weight: float = 0.5           # lambda (SegX gives none; its public code: 1.0)
    base: int = 32                    # filters of the first block (x2 per level)
    epochs: int | None = None         # None: the study's train.epochs (a U-Net on lung fields
                                      # converges long before the classifiers)

    def __post_init__(self):
        if self.region not in REGIONS:
            raise ValueError(f"segmenter region must be one of {', '.join(REGIONS)}, got "
                             f"{self.region!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"segmenter epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.bce_weight <= 1:
            raise ValueError(f"segmenter bce_weight must be in [0, 1], got {self.bce_weight}")


def region_of(data, region: str) -> np.ndarray:
    masks = getattr(data, region)
    if masks is None:
        raise ValueError(f"the data has no {region!r} masks for the segmenter to learn")
    return np.asarray(masks) > 0.5


class SegmenterStep(TrainStep):
    targets = ("mask",)

    def __init__(self, model, optimizer, *, config: SegmenterConfig, preprocessor: str):
        # no classifier here: the base's CamModel does not apply
        self.model, self.optimizer, self.config = model, optimizer, config
        self.preprocess = get_preprocessor(preprocessor)
        self.mixed_precision = False
        self._logits = logits_model(model)

    def loss(self, logits, masks):
        return tf.reduce_mean(bce_dice_loss(logits[..., 0], masks, self.config.bce_weight))

    def __call__(self, batch):
        x = self.preprocess(batch["image"])
        with tf.GradientTape() as tape:
            loss = self.loss(self._logits(x, training=True), batch["mask"])
        self.apply_gradients(tape, loss)
        return {"loss": loss}

    def logits(self, x):
        return self._logits(x, training=False)

    def validation_scores(self, logits: np.ndarray, val) -> dict:
        masks = region_of(val, self.config.region)
        loss = float(self.loss(tf.constant(logits), tf.constant(masks, tf.float32)))
        scores = dice_iou(logits[..., 0] > 0, masks)
        return {"val_loss": loss, "val_dice": scores["dice"], "val_iou": scores["iou"]}


class Segmenter(Method):
    name = "segmenter"
    config_class = SegmenterConfig
    preprocessor = "unit"
    compares_layers = False

    def train_config(self, study, config):
        if config.epochs is None:
            return study.train
        return dataclasses.replace(study.train, epochs=config.epochs)

    def build_model(self, study, config, num_classes, input_shape, warnings):
        check_side(input_shape)
        return build_unet(input_shape, config.base, seed=study.train.seed,
                          bn_momentum=study.model.bn_momentum)

    def make_step(self, model, optimizer, study, config):
        return SegmenterStep(model, optimizer, config=config, preprocessor=self.preprocessor)

    def explain(self, model, x, *, layer=None, class_index=None, batch_size=32):
        """The segmentation probability map (N, H, W)."""
        p = np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))[..., 0]
                            for i in range(0, len(x), batch_size)])
        return Explanation(p.reshape(len(p), -1).mean(1), p, np.zeros(len(p), int), "")

    def training_fields(self, config):
        return {"segmenter": dataclasses.asdict(config)}


register(Segmenter())

__all__ = ["Segmenter", "SegmenterConfig", "SegmenterStep", "region_of"]
