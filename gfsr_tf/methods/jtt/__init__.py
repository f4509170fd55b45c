"""JTT - Just Train Twice (Liu et al., ICML 2021): improving worst-group accuracy without group
labels on the training data.

1. Identification: train the ordinary classifier (ERM) for T epochs, f_id.
2. Error set E = the training images f_id classifies wrongly (inference mode, threshold 0.5 /
   argmax).
3. Final model: train ERM again from the same initial weights on the training set in which every
   image of E appears λ_up times (the paper's upsampling), for the study's full epochs.

Here stage 1 is the baseline's first T epochs (shared with the baseline variant's run, so it
costs nothing extra in a study that trains the baseline anyway) and stages 2-3 are this method's
last stage (`Method.finish`), trained by the same Trainer into <run>/jtt_final/ - resumable, and
idempotent: a rerun of a finished study reuses the saved error set and the trained final model.
The training time reported is the identification epochs plus the final training's. Group labels
are used only to *report* the error set's composition (class x marker status) and, as JTT does,
to tune T and λ_up on the validation split (not built here: the defaults below are fixed).
Defaults: T = 2 of the study's epochs (the benchmark's baseline has learnt the marker, not yet the
lesions, after 2 epochs - docs/studies/shortcuts.md), λ_up = 6 (the smallest value of JTT's
grid {4, 5, 6, 20, 50, 100} above 5: the final training then sees ~1.5x the images per epoch).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from ...preprocessing import get_preprocessor
from ..baseline import Baseline
from ..registry import register


@dataclasses.dataclass
class JTTConfig:
    identification_epochs: int = 2      # T
    upweight: int = 6                   # λ_up: each error-set image appears this many times

    def __post_init__(self):
        if self.identification_epochs < 1 or self.upweight < 1:
            raise ValueError(f"jtt identification_epochs and upweight must be >= 1, got "
                             f"{self.identification_epochs}, {self.upweight}")


def upsampled_index(errors: np.ndarray, n: int, upweight: int) -> np.ndarray:
    """Indices of the final training set: every image once, each error-set image upweight − 1
    more times."""
    return np.concatenate([np.arange(n), np.repeat(np.asarray(errors, int), upweight - 1)])


class JTT(Baseline):
    name = "jtt"
    config_class = JTTConfig
    stage_fields = ("jtt",)

    def check(self, study, config):
        if config.identification_epochs > study.train.epochs:
            raise ValueError(f"jtt identification_epochs ({config.identification_epochs}) "
                             f"exceeds the study's epochs ({study.train.epochs})")
        if study.train.distribute not in (None, "none"):
            raise ValueError("jtt's final training runs on one replica: not combined with "
                             "tf.distribute yet")

    def plain_epochs(self, config):
        return config.identification_epochs

    def train_config(self, study, config):
        return dataclasses.replace(study.train, epochs=config.identification_epochs)

    def finish(self, model, data, study, config, warnings, run_dir=None, verbose=0):
        from ...training import Trainer
        stage = Path(run_dir) / "jtt_final"
        stage.mkdir(parents=True, exist_ok=True)
        train = data["train"]
        x = np.asarray(get_preprocessor(self.preprocessor)(train.images))
        record = stage / "error_set.json"
        if record.exists():     # a rerun: `model` may be the final model already
            errors = np.asarray(json.loads(record.read_text())["indices"], int)
        else:
            p = model.predict(x, verbose=0)       # probabilities: p > 0.5 / argmax
            guess = (p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(-1)
            wrong = guess != train.labels
            errors = np.flatnonzero(wrong)
            record.write_text(json.dumps({"indices": errors.tolist()}))
        final = self.build_model(study, config, train.num_classes, x.shape[1:], warnings)
        upsampled = train.subset(upsampled_index(errors, len(train), config.upweight))
        if verbose:
            print(f"jtt: error set {len(errors)} of {len(train)} training images; final "
                  f"training on {len(upsampled)} images per epoch in {stage}")
        history = Trainer(final, stage, self.step_factory(config, study), train=study.train,
                          verbose=verbose).fit(upsampled, data["val"])
        model.set_weights(keras.models.load_model(stage / "best.keras").get_weights())
        groups = {}
        if train.has_marker is not None:
            for label, name in enumerate(train.class_names):
                for marked in (0, 1):
                    in_group = (train.labels == label) & (train.has_marker == marked)
                    groups[f"{name}, marker {'on' if marked else 'off'}"] = {
                        "training_images": int(in_group.sum()),
                        "in_error_set": int(in_group[errors].sum())}
        return {"jtt": {"identification_epochs": config.identification_epochs,
                        "upweight": config.upweight, "error_set": int(len(errors)),
                        "training_images": int(len(train)),
                        "final_training_images": int(len(upsampled)),
                        "error_set_by_group": groups, "final_history": history,
                        "seconds": float(sum(h["seconds"] for h in history))}}

    def describe(self, report, variant):
        d = report[variant]["training"].get("jtt")
        if not d:
            return []
        lines = ["", f"## {variant}: Just Train Twice (Liu et al. 2021)", "",
                 f"Identification model: the baseline after {d['identification_epochs']} "
                 f"epochs; it misclassified {d['error_set']} of {d['training_images']} training "
                 f"images (the error set). Final model: trained again from the same initial "
                 f"weights with each error-set image {d['upweight']} times "
                 f"({d['final_training_images']} images per epoch)."]
        if d.get("error_set_by_group"):
            lines += ["", "| group | training images | in the error set |", "|---|---|---|"]
            lines += [f"| {g} | {v['training_images']} | {v['in_error_set']} |"
                      for g, v in d["error_set_by_group"].items()]
        return lines


register(JTT())

__all__ = ["JTT", "JTTConfig", "upsampled_index"]
