"""The eye-gaze U-Net (Karargyris et al. 2021; the baseline of Watanabe et al. 2022): an
EfficientNet-B0 classifier whose decoder is trained towards the radiologist's static gaze
heatmap, loss = gamma * BCE(class logits, one-hot) + (1 - gamma) * BCE(gaze logits, heatmap);
`decoder=False, gamma=1` is the paper's classification-only model. The model is
`model.py`; the step trains every weight (decoder included); Grad-CAM, evaluation and
export see the single-output classifier view.

Watanabe et al.'s model sets put the classifier's own input-gradient map M (guided backprop,
DeconvNet or the plain gradient: `saliency.input_gradients`, score = logit of the predicted
class) into the loss, with M~ = clip(M, 1e-6, 1 - 1e-6):
  set 1  gamma BCE(class) + (1 - gamma) BCE(logit(M~), gaze)          the decoder is unused
  set 2  gamma BCE(class) + (1 - gamma) BCE(gaze logits, stop_gradient(M))   no gaze data
  set 3  gamma BCE(class) + (1 - gamma) [w BCE(gaze logits, gaze) + (1 - w) BCE(logit(M~), gaze)]
(w is unreported in the paper: 0.5 by default). Sets 1 and 3 differentiate through M (a double
backward, 3-5x the U-Net's step)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import tensorflow as tf

from .model import BOTTLENECK, build_gaze_unet, classifier_view, logits_model
from ...saliency.input_gradients import rule_maps
from ...training.step import TrainStep, accuracy, classification_loss
from ..base import Method
from ..registry import register


RULES = ("guided_backprop", "deconvnet", "gradient")


@dataclass
class GazeUnetConfig:
    gamma: float = 0.41731            # weight of the classification loss
    decoder: bool = True              # False: the classification-only model (gamma must be 1)
    dropout: float = 0.5
    model_set: int = 0                # Watanabe et al.'s set 1 | 2 | 3; 0: the plain U-Net
    rule: str = "guided_backprop"     # the heatmap generator of sets 1-3 (RULES)
    set3_weight: float = 0.5          # w: the decoder's share of set 3's gaze loss
    explained_class: str = "predicted"   # M explains the predicted class, or the "true" one

    def __post_init__(self):
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gaze_unet gamma must be in [0, 1], got {self.gamma}")
        if not 0 <= self.set3_weight <= 1:
            raise ValueError(f"gaze_unet set3_weight must be in [0, 1], got {self.set3_weight}")
        if self.model_set not in (0, 1, 2, 3):
            raise ValueError(f"gaze_unet model_set must be 0 (plain U-Net), 1, 2 or 3, got "
                             f"{self.model_set}")
        if self.rule not in RULES:
            raise ValueError(f"gaze_unet rule must be one of {', '.join(RULES)}, got "
                             f"{self.rule!r}")
        if self.explained_class not in ("predicted", "true"):
            raise ValueError(f"gaze_unet explained_class must be predicted or true, got "
                             f"{self.explained_class!r}")
        if self.model_set in (2, 3) and not self.decoder:
            raise ValueError(f"gaze_unet set {self.model_set} trains the decoder: it needs "
                             "decoder=True")
        if not self.decoder and self.gamma != 1 and self.model_set != 1:
            raise ValueError("gaze_unet without a decoder has no gaze loss: set gamma=1")


def _bce(target, logits):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        tf.cast(target, tf.float32), tf.cast(logits, tf.float32)))


def map_logits(m: tf.Tensor) -> tf.Tensor:
    """logit(M~), M~ = clip(M, 1e-6, 1 - 1e-6): a [0, 1] map as BCE-with-logits input."""
    m = tf.clip_by_value(m, 1e-6, 1 - 1e-6)
    return tf.math.log(m / (1 - m))


class GazeUnetStep(TrainStep):
    def __init__(self, model, optimizer, *, config: GazeUnetConfig, preprocessor: str,
                 mixed_precision: bool = False):
        super().__init__(classifier_view(model), optimizer, preprocessor=preprocessor,
                         logits_layer=BOTTLENECK, mixed_precision=mixed_precision)
        self.model = model                  # every weight is trained, the decoder's too
        self.config = config
        self.targets = ("mask",) if config.decoder and config.model_set != 2 or \
            config.model_set == 1 else ()
        self._logits = logits_model(model)
        # the class logits alone, on the same weights: the generator's view reads these
        self._class_logits = keras.Model(model.inputs, model.get_layer("logits").output)

    def _map(self, x, class_logits, labels):
        cls = tf.cast(labels, tf.int32) if self.config.explained_class == "true" else \
            tf.argmax(class_logits, -1, output_type=tf.int32)
        return rule_maps(self._class_logits, x, self.config.rule, cls, training=True)

    def __call__(self, batch):
        x, labels = self.preprocess(batch["image"]), batch["label"]
        c, zero = self.config, tf.zeros(())
        with tf.GradientTape() as tape:
            out = tf.nest.flatten(self._logits(x, training=True))
            class_logits = tf.cast(out[0], tf.float32)
            ce = tf.reduce_mean(classification_loss(class_logits, labels, multi_label=True))
            gaze = decoder_term = map_term = zero
            if c.model_set in (1, 3):     # differentiated through M: the double backward
                m = self._map(x, class_logits, labels)
                map_term = _bce(batch["mask"], map_logits(m))
            if c.model_set == 2:          # the decoder imitates the generator
                m = tf.stop_gradient(self._map(x, class_logits, labels))
                decoder_term = _bce(m[..., None], out[1])
            elif c.decoder and c.model_set != 1:
                decoder_term = _bce(tf.cast(batch["mask"], tf.float32)[..., None], out[1])
            if c.model_set == 1:
                gaze = map_term
            elif c.model_set == 3:
                gaze = c.set3_weight * decoder_term + (1 - c.set3_weight) * map_term
            else:
                gaze = decoder_term
            loss = c.gamma * ce + (1 - c.gamma) * gaze
            scaled = self.scaled(loss)
        self.apply_gradients(tape, scaled)
        return {"loss": loss, "ce": ce, "gaze_bce": gaze, "decoder_bce": decoder_term,
                "map_bce": map_term, "acc": accuracy(class_logits, labels)}

    def apply_gradients(self, tape, scaled_loss):
        """Set 1 leaves the decoder out of the loss: its gradients are zeros, not None."""
        variables = self.model.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        self.apply(grads, variables)


class GazeUnet(Method):
    name = "gaze_unet"
    config_class = GazeUnetConfig
    preprocessor = "raw_rgb"

    def guidance(self, config):
        uses_gaze = (config.decoder and config.model_set != 2) or config.model_set == 1
        return ("gaze", 0.0) if uses_gaze else None

    def layer_for(self, study, config):
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
        if options.get("model_set"):
            lines += ["", f"Watanabe et al.'s model set {options['model_set']} with "
                      f"{options.get('rule')} maps of the {options.get('explained_class')} class"
                      + (f", w = {options.get('set3_weight')}" if options["model_set"] == 3
                         else "") + "."]
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
