"""Pham et al.'s prompt-controlled gaze-intensity predictor (`model.py`) trained by
the generic loop on prompted samples (`prompts.py`: batches carry "prompt") with
L_h = L_2 + L_ce + L_dice (`loss.py`). Its targets are the ground-truth intensity maps
("intensity") and their foreground ("foreground": the gaze foundation's "levels" binarisation),
which the gaze-intensity study hands to the trainer (`foreground_of`). Validation: the loss and
the heatmap metrics' fw_iou of the predicted maps; best weights on val_loss. Its explanation is
its own output under a prompt: `explain(model, x, prompts=...)`.

The masked classifier of the paper's second stage is no method of its own: the predictor is
frozen there, so the study gates the images once and trains the project's classifier on them
(`study.py`).

Everything that exists only for this method lives in this folder: model.py (the predictor and its
registered layer), loss.py, prompts.py (prompted samples from EGD-CXR or the gaze simulation),
and the top-layer modules preset.py (the study's rows and options) and study.py (the resumable
rows, Tables 3-8, the controllability figure), which import the study and report layers and are
imported by nothing below them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ...metrics.heatmaps import BINARISATIONS, as_maps, binarise_map, heatmap_metrics
from .loss import intensity_loss
from .model import build_intensity_predictor, logits_model, predict_maps
from ...preprocessing import get_preprocessor
from ...saliency.gradcam import Explanation
from ...training.step import TrainStep
from ..base import Method
from ..registry import register


@dataclass
class GazeIntensityConfig:
    l2_weight: float = 1.0            # the paper's lambdas (1, 1, 1); Table 6 rows zero some
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    use_alpha: bool = True            # False: Table 7's ablation (feature mean, no alpha)
    patch: int | None = None          # None: side / 16 (16 at 224 px, 4 at 64 px)
    dim: int = 240
    depth: int = 8
    heads: int = 6
    binarise: str = "levels"          # foreground rule of the target maps (heatmaps module)

    def __post_init__(self):
        weights = (self.l2_weight, self.ce_weight, self.dice_weight)
        if min(weights) < 0 or not sum(weights) > 0:
            raise ValueError(f"gaze_intensity loss weights must be >= 0 and not all 0, got "
                             f"l2 {self.l2_weight}, ce {self.ce_weight}, dice {self.dice_weight}")
        if self.binarise not in BINARISATIONS:
            raise ValueError(f"gaze_intensity binarise must be one of "
                             f"{', '.join(BINARISATIONS)}, got {self.binarise!r}")


def foreground_of(maps, rule: str = "levels") -> np.ndarray:
    """(N, H, W) 0/1 foreground of ground-truth intensity maps (float32, a loss target)."""
    maps = as_maps(maps, "intensity maps")
    return np.stack([binarise_map(m, rule) for m in maps]).astype(np.float32)


class IntensityStep(TrainStep):
    targets = ("intensity", "foreground")
    extra_inputs = {"prompt": ("prompts", "int32")}

    def __init__(self, model, optimizer, *, config: GazeIntensityConfig, preprocessor: str):
        # no classifier here: the base's CamModel does not apply
        self.model, self.optimizer, self.config = model, optimizer, config
        self.preprocess = get_preprocessor(preprocessor)
        self.mixed_precision = False
        self._logits = logits_model(model)
        self.weights = (config.l2_weight, config.ce_weight, config.dice_weight)

    def __call__(self, batch):
        x = self.preprocess(batch["image"])
        with tf.GradientTape() as tape:
            z = self._logits({"image": x, "prompt": batch["prompt"]}, training=True)[..., 0]
            terms = intensity_loss(z, batch["intensity"], batch["foreground"], self.weights)
            loss = tf.reduce_mean(terms["loss"])
        self.apply_gradients(tape, loss)
        return {k: tf.reduce_mean(v) for k, v in terms.items()}

    def logits(self, x, prompt):
        return self._logits({"image": x, "prompt": prompt}, training=False)

    def validation_scores(self, logits: np.ndarray, val) -> dict:
        target = as_maps(val.gaze, "val gaze maps").astype(np.float32)
        terms = intensity_loss(tf.constant(logits[..., 0]), tf.constant(target),
                               tf.constant(foreground_of(target, self.config.binarise)),
                               self.weights)
        pred = 1 / (1 + np.exp(-logits[..., 0].astype(np.float64)))
        metrics = heatmap_metrics(pred, target)
        return {"val_loss": float(np.mean(terms["loss"])), "val_fw_iou": metrics["fw_iou"],
                "val_l2": metrics["l2"]}


class GazeIntensity(Method):
    name = "gaze_intensity"
    config_class = GazeIntensityConfig
    preprocessor = "raw_rgb"
    compares_layers = False

    def build_model(self, study, config, num_classes, input_shape, warnings):
        return build_intensity_predictor(
            input_shape, patch=config.patch, dim=config.dim, depth=config.depth,
            heads=config.heads, use_alpha=config.use_alpha, weights=study.model.weights,
            bn_momentum=study.model.bn_momentum, seed=study.train.seed, warnings=warnings)

    def make_step(self, model, optimizer, study, config):
        return IntensityStep(model, optimizer, config=config, preprocessor=self.preprocessor)

    def explain(self, model, x, *, layer=None, class_index=None, batch_size=32, prompts=None):
        """The predicted intensity maps (N, H, W) of preprocessed images under `prompts`."""
        if prompts is None:
            raise ValueError("the gaze-intensity predictor explains an image under a prompt: "
                             "pass prompts= (0 heart, 1 left lung, 2 right lung)")
        maps = predict_maps(model, np.asarray(x, np.float32), prompts, batch_size)
        return Explanation(maps.reshape(len(maps), -1).mean(1), maps,
                           np.broadcast_to(np.asarray(prompts), (len(maps),)).copy(), "")

    def training_fields(self, config):
        return {"gaze_intensity": dataclasses.asdict(config)}


register(GazeIntensity())

__all__ = ["GazeIntensity", "GazeIntensityConfig", "IntensityStep", "foreground_of"]
