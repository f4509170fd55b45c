"""The eye-gaze U-Net (Karargyris et al. 2021; the baseline of Watanabe et al. 2022): an
EfficientNet-B0 classifier whose decoder is trained towards the radiologist's static gaze
heatmap, loss = gamma * BCE(class logits, one-hot) + (1 - gamma) * BCE(gaze logits, heatmap);
`decoder=False, gamma=1` is the paper's classification-only model. The model is
`models.gaze_unet`; the step trains every weight (decoder included); Grad-CAM, evaluation and
export see the single-output classifier view."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import tensorflow as tf

from ...models.gaze_unet import BOTTLENECK, build_gaze_unet, classifier_view, logits_model
from ...training.step import TrainStep, accuracy, classification_loss
from ..base import Method
from ..registry import register

# The reference's settings (Watanabe et al. 2022, from Karargyris et al.'s tuning)
PAPER = {"unet": {"gamma": 0.41731, "learning_rate": 0.0090552},
         "no_seg": {"gamma": 1.0, "learning_rate": 0.006486}}


@dataclass
class GazeUnetConfig:
    gamma: float = 0.41731            # weight of the classification loss
    decoder: bool = True              # False: the classification-only model (gamma must be 1)
    dropout: float = 0.5

    def __post_init__(self):
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gaze_unet gamma must be in [0, 1], got {self.gamma}")
        if not self.decoder and self.gamma != 1:
            raise ValueError("gaze_unet without a decoder has no gaze loss: set gamma=1")


class GazeUnetStep(TrainStep):
    def __init__(self, model, optimizer, *, config: GazeUnetConfig, preprocessor: str,
                 mixed_precision: bool = False):
        super().__init__(classifier_view(model), optimizer, preprocessor=preprocessor,
                         logits_layer=BOTTLENECK, mixed_precision=mixed_precision)
        self.model = model                  # every weight is trained, the decoder's too
        self.config = config
        self.targets = ("mask",) if config.decoder else ()
        self._logits = logits_model(model)

    def __call__(self, batch):
        x, labels = self.preprocess(batch["image"]), batch["label"]
        zero = tf.zeros(())
        with tf.GradientTape() as tape:
            out = tf.nest.flatten(self._logits(x, training=True))
            class_logits = tf.cast(out[0], tf.float32)
            ce = tf.reduce_mean(classification_loss(class_logits, labels, multi_label=True))
            gaze = zero
            if self.config.decoder:
                target = tf.cast(batch["mask"], tf.float32)[..., None]
                gaze = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                    target, tf.cast(out[1], tf.float32)))
            loss = self.config.gamma * ce + (1 - self.config.gamma) * gaze
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        return {"loss": loss, "ce": ce, "gaze_bce": gaze, "acc": accuracy(class_logits, labels)}


class GazeUnet(Method):
    name = "gaze_unet"
    config_class = GazeUnetConfig
    preprocessor = "raw_rgb"

    def guidance(self, config):
        return ("gaze", 0.0) if config.decoder else None

    def target_layer(self, study):
        return BOTTLENECK       # the reference's Grad-CAM layer (encoder.blocks.6)

    def build_model(self, study, config, num_classes, input_shape, warnings):
        return build_gaze_unet(num_classes, input_shape, study.model.weights,
                               decoder=config.decoder, dropout=config.dropout,
                               seed=study.train.seed, bn_momentum=study.model.bn_momentum,
                               warnings=warnings)

    def make_step(self, model, optimizer, study, config):
        return GazeUnetStep(model, optimizer, config=config, preprocessor=self.preprocessor,
                            mixed_precision=study.train.mixed_precision)

    def classifier_view(self, model):
        return classifier_view(model)

    def training_fields(self, config):
        return {"gaze_unet": dataclasses.asdict(config)}

    def describe(self, report, variant):
        options = report[variant]["training"].get("gaze_unet", {})
        lines = ["", f"## {variant}: eye-gaze U-Net (Karargyris et al.)", "",
                 f"gamma {options.get('gamma')}, decoder "
                 f"{'on' if options.get('decoder') else 'off (classification only)'}."]
        gaze = report[variant].get("gaze", {})
        if gaze:
            lines += ["", "| maps vs the radiologist's gaze | fg IoU x100 | fw IoU x100 | "
                      "SSIM | PSNR | L1 |", "|---|---|---|---|---|---|"]
            for name, m in gaze.get("metrics", {}).items():
                lines.append(f"| {name} | {100 * m['fg_iou']:.1f} | {100 * m['fw_iou']:.1f} | "
                             f"{m['ssim']:.3f} | {m['psnr']:.2f} | {m['l1']:.3f} |")
        return lines


register(GazeUnet())

__all__ = ["GazeUnet", "GazeUnetConfig", "GazeUnetStep", "PAPER"]
