"""The method seam. A method = its config dataclass + model builder + training step + explainer
+ `describe`. The study, the trainer, the evaluators and the report reach a method only through
this interface, so adding one means adding a folder `methods/<name>/` and registering it."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..config import checked_options


@dataclasses.dataclass
class NoOptions:
    """For methods without options."""


class Method:
    name: str = ""
    config_class: type = NoOptions
    preprocessor: str = "resnet50_caffe"   # gfsr_tf.preprocessing.PREPROCESSORS name
    # the localization evaluator also reads Grad-CAM at the ResNet stages beside the method's
    # layer (False where those layers do not see whole images)
    compares_layers: bool = True
    # the model-card keys `finish` writes, copied into the report's training section
    stage_fields: tuple = ()

    # ------------------------------------------------------------------------- configuration
    def make_config(self, options: dict | None = None):
        """The method's config dataclass from a variant's options; unknown keys are an error
        naming the method (they come from a preset, --set or a report the user wrote)."""
        options = dict(options or {})
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown {self.name} option(s) {unknown}; known: "
                             f"{', '.join(sorted(known)) or 'none'}")
        return self.config_class(**checked_options(self.name, self.config_class, options))

    def check(self, study, config) -> None:
        """Raise a ValueError for a study this variant cannot train (e.g. an image size its
        model cannot take); the study calls it for every variant before any data loads."""

    def guidance(self, config) -> tuple[str, float] | None:
        """The per-image guidance the step trains towards: (mask source - "lungs", "lesions",
        "gaze" or "annotations" - and blur sigma in px), or None. The study hands the masks to
        the step as the batch's "mask"."""
        return None

    def plain_epochs(self, config) -> int:
        """How many first epochs train exactly as the baseline method does (same model, step
        and data order): a study starts such a variant from its baseline's state after them."""
        return 0

    def finish(self, model, data: dict, study, config, warnings: list,
               run_dir=None, verbose: int = 0) -> dict | None:
        """A last stage after training (DFR's last-layer retraining, JTT's second training):
        change the trained model in place and return report fields, or None for no stage (the
        default). The study saves the model again afterwards. It must give the same model when
        run twice (a rerun of a finished study runs it again on the saved model); `run_dir` is
        the variant's folder, for a stage that keeps files of its own, `verbose` the study's
        (a stage that trains shows its progress). A stage field that is a dict with "seconds"
        adds them to the variant's training time."""
        return None

    def train_config(self, study, config):
        """The TrainConfig this variant trains with: the study's, unless the method's options
        change it (e.g. a segmenter that needs fewer epochs than the classifiers)."""
        return study.train

    def layer_for(self, study, config) -> str | None:
        """The layer the explainer of one variant reads (None: the explainer's default); what
        the model card records."""
        return None

    def preprocessor_for(self, config) -> str:
        """The preprocessor of one variant's model (the model card's): the class attribute
        `preprocessor`, unless its options choose a backbone that expects another."""
        return self.preprocessor

    # ------------------------------------------------------------------------------ building
    def build_model(self, study, config, num_classes: int, input_shape, warnings: list):
        raise NotImplementedError

    def make_step(self, model, optimizer, study, config):
        """The method's `training.TrainStep` for this model and optimizer."""
        raise NotImplementedError

    def step_factory(self, config, study):
        """make_step bound to a config: what `training.Trainer` takes (not a hook: override
        make_step)."""
        return functools.partial(self.make_step, study=study, config=config)

    def classifier_view(self, model):
        """The single-output classifier (class probabilities) of a trained model, sharing its
        weights: what Grad-CAM, the evaluators and the export take. Most methods' models are
        one already."""
        return model

    # ---------------------------------------------------------------------------- explaining
    def saliency_for(self, config) -> str:
        """The map rule of `gfsr_tf.saliency` the variant's maps are read with (the model card
        records it, so `gfsr explain` shows the same): Grad-CAM unless a method trains another."""
        return "gradcam"

    def explain(self, model, x: np.ndarray, *, layer: str | None = None, class_index=None,
                batch_size: int = 32):
        """Heatmaps (N, H, W) in [0, 1] for preprocessed inputs `x`: Grad-CAM by default."""
        from ..saliency import explain
        return explain(model, x, layer=layer, class_index=class_index, batch_size=batch_size)

    # ------------------------------------------------------------------------------ reporting
    def training_fields(self, config) -> dict:
        """Extra keys of the variant's report `training` section."""
        return {}

    def annotate(self, report: dict, variant: str) -> dict:
        """Top-level report keys this method adds once the study's variants are evaluated."""
        return {}

    def describe(self, report: dict, variant: str) -> list[str]:
        """Markdown lines of the method's own section in summary.md / report.html (rendered from
        report.json alone: no model is loaded)."""
        return []
