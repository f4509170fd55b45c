"""MedicalPatchNet (Wienholt et al., Sci Rep 2026): a classifier explainable by construction -
each patch is classified alone and the image logit is the plain mean of the patch logits
(`model.py`). It trains on cross-entropy through the generic step (BCE on one sigmoid
per class with `model.multi_label`); its explanation is the patch map (`patch_maps.py`), and
a one-patch model (P = 1, the paper's baseline: the same backbone and head on the whole image)
is explained by Grad-CAM at its last conv stage."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .model import (PATCH_GRID, build_patchnet, check_geometry, last_stage,
                                patch_count)
from ...training.step import ClassificationStep
from ..base import Method
from ..registry import register


@dataclass
class PatchNetConfig:
    patches: int = 4                  # P: P x P patches of p = S / P px
    backbone: str = "resnet50"        # resnet50 | efficientnetv2s (the paper's) | small_cnn
    dropout: float = 0.2
    stem_init: str = "sum"            # 1-channel input: pretrained RGB stem summed, or random

    def __post_init__(self):
        if self.patches < 1:
            raise ValueError(f"patchnet patches must be >= 1, got {self.patches}")


# options of guided focus, which MedicalPatchNet does not take
GUIDED_OPTIONS = ("weight", "mask_source", "consistency_weight", "counterfactual_rate",
                  "outside_attribution_weight", "input_gradient_weight")


class PatchNet(Method):
    name = "patchnet"
    config_class = PatchNetConfig
    preprocessor = "resnet50_caffe"
    compares_layers = False    # conv layers see patches, not images: no layer-wise Grad-CAM

    def make_config(self, options=None):
        guided = sorted(set(options or {}) & set(GUIDED_OPTIONS))
        if guided:
            raise ValueError(f"guided focus is not defined for a patch model (MedicalPatchNet "
                             f"is explainable by construction): drop {guided}")
        return super().make_config(options)

    def layer_for(self, study, config):
        return PATCH_GRID

    def check(self, study, config):
        check_geometry(study.benchmark.image_size, config.patches, config.backbone)

    def build_model(self, study, config, num_classes, input_shape, warnings):
        check_geometry(int(input_shape[0]), config.patches, config.backbone)
        return build_patchnet(num_classes, input_shape, config.patches, study.model.weights,
                              backbone=config.backbone, dropout=config.dropout,
                              stem_init=config.stem_init, multi_label=study.model.multi_label,
                              bn_momentum=study.model.bn_momentum, seed=study.train.seed,
                              warnings=warnings)

    def make_step(self, model, optimizer, study, config):
        return ClassificationStep(model, optimizer, preprocessor=self.preprocessor,
                                  logits_layer=PATCH_GRID,
                                  mixed_precision=study.train.mixed_precision)

    def explain(self, model, x, *, layer=None, class_index=None, batch_size=32):
        """The patch map (`layer` None or "patch_logits": the raw map at o = p/4;
        "patch_logits/<raw|scaled>/o=<o>" for another); a one-patch model, or any conv layer
        name of it: Grad-CAM."""
        from ...preprocessing import get_preprocessor
        from .patch_maps import black, explain_patches
        spec = (layer or PATCH_GRID).split("/")
        if spec[0] != PATCH_GRID or patch_count(model) == 1:
            name = last_stage(model) if spec[0] == PATCH_GRID else layer
            return super().explain(model, x, layer=name, class_index=class_index,
                                   batch_size=batch_size)
        p = int(x.shape[1]) // patch_count(model)
        kind = spec[1] if len(spec) > 1 else "raw"
        offset = int(spec[2].removeprefix("o=")) if len(spec) > 2 else max(1, p // 4)
        fill = black(get_preprocessor(self.preprocessor), 1)
        return explain_patches(model, x, fill=fill, offset=offset, kind=kind,
                               class_index=class_index, batch_size=batch_size)

    def training_fields(self, config):
        return {"patchnet": dataclasses.asdict(config)}

    def describe(self, report, variant):
        options = report[variant]["training"].get("patchnet", {})
        p = options.get("patches")
        lines = ["", f"## {variant}: MedicalPatchNet (Wienholt et al.)", "",
                 f"{p} x {p} patches, {options.get('backbone')} backbone; the image logit is "
                 "the mean of the patch logits." if p and p > 1 else
                 f"one patch: the same {options.get('backbone')} backbone and head on the "
                 "whole image (the paper's baseline), explained by Grad-CAM."]
        return lines


register(PatchNet())

__all__ = ["PatchNet", "PatchNetConfig"]
