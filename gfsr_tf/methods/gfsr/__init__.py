"""GFSR-Net (Contreras & Bocklitz): the classifier's own Grad-CAM trained towards relevance
masks. Same model as the baseline; the step adds the relevance loss (`step.py`, `fused.py`)."""
from __future__ import annotations

import dataclasses

from ..baseline import Baseline
from ..registry import register
from .config import MASK_SOURCES, RelevanceConfig
from .describe import describe, gfsr_configuration
from .step import GfsrStep


class Gfsr(Baseline):
    name = "gfsr"
    config_class = RelevanceConfig
    stage_fields = ("bn_recalibration", "batchnorm")

    def guidance(self, config: RelevanceConfig):
        return (config.mask_source, config.mask_blur_sigma) if config.guided else None

    def plain_epochs(self, config: RelevanceConfig) -> int:
        # the warm-up gate zeroes every guidance term and the counterfactual batch (step.py)
        return config.warmup_epochs

    def finish(self, model, data, study, config, warnings, run_dir=None, verbose=0):
        fields = {}
        if config.batchnorm == "frozen":
            # the saved model's BatchNorm layers train again when a user fine-tunes it; its
            # statistics stay those its last epoch trained with
            from ...training.batchnorm import freeze_batchnorm
            return {"batchnorm": {"frozen_in_guided_epochs": True,
                                  "layers": freeze_batchnorm(model, frozen=False)}}
        if config.batchnorm == "held":
            # the saved (loaded) model's layers still have momentum 1: the model's own again
            from ...training.batchnorm import release_batchnorm
            momentum = study.model.bn_momentum if study is not None else None
            fields["batchnorm"] = {"held_in_guided_epochs": True, "layers": release_batchnorm(
                model, momentum if momentum is not None else 0.99)}
        if not config.bn_recalibration:
            return fields or None
        from ...preprocessing import get_preprocessor
        from ...training.batchnorm import recalibrate_batchnorm
        images = get_preprocessor(self.preprocessor_for(config))(data["train"].images)
        return {**fields, "bn_recalibration": recalibrate_batchnorm(model, images,
                                                                    study.train.batch_size)}

    def make_step(self, model, optimizer, study, config):
        return GfsrStep(model, optimizer, config=config, target_layer=self.layer_for(study, config),
                        preprocessor=self.preprocessor, batch_size=study.train.batch_size,
                        mixed_precision=study.train.mixed_precision)

    def saliency_for(self, config):
        return config.saliency

    def training_fields(self, config):
        return {"relevance": dataclasses.asdict(config)}

    def annotate(self, report, variant):
        options = report[variant]["training"]["relevance"]
        return {f"{variant}_configuration":
                gfsr_configuration(options, report["config"]["model"]["target_layer"])}

    def describe(self, report, variant):
        return describe(report, variant)


register(Gfsr())

__all__ = ["GfsrStep", "MASK_SOURCES", "RelevanceConfig", "gfsr_configuration"]
