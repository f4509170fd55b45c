"""Deep Feature Reweighting (Kirichenko, Izmailov & Wilson, ICLR 2023): retrain only the last
layer of an ERM model on a small group-balanced held-out set.

Stage 1 is the baseline's own training (the study shares it whole: `plain_epochs` = every
epoch, so `dfr` costs one last-layer fit beside the baseline). Stage 2 (`finish`), on the
validation split, whose groups (class × marker status, known on the benchmarks) are DFR's group
labels - its annotation budget:

  1. the validation images are split in two halves (seeded): a *retraining* half and a *tuning*
     half, kept apart;
  2. from the retraining half, `draws` group-balanced subsets (every group down-sampled to the
     smallest group's count) are drawn;
  3. for each C in `c_grid`, an L1-regularised logistic regression (scikit-learn, liblinear) on
     the standardised embeddings (the input of the classifier's last Dense layer) is fitted on
     each draw and the coefficients averaged (their "DFR^Tr_Val" recipe); C is chosen by
     worst-group accuracy on the tuning half - never on test data;
  4. the chosen C is refitted the same way on the whole retraining half's draws and written
     into the last Dense layer (standardisation folded into the weights and bias), so the saved
     model is a plain Keras classifier.

The embeddings do not change in stage 2, so running it twice gives the same model (a rerun of a
finished study recomputes it).
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np

from ...metrics import group_accuracy
from ...preprocessing import get_preprocessor
from ..baseline import Baseline
from ..registry import register

GROUPS = 4


@dataclasses.dataclass
class DFRConfig:
    c_grid: tuple = (0.1, 0.3, 1.0, 3.0, 10.0)   # inverse L1 strengths tried
    draws: int = 10                               # balanced subsets averaged per fit
    seed: int = 0

    def __post_init__(self):
        self.c_grid = tuple(float(c) for c in self.c_grid)
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"dfr c_grid needs positive values, got {self.c_grid}")
        if self.draws < 1:
            raise ValueError(f"dfr draws must be >= 1, got {self.draws}")


def last_dense(model: keras.Model) -> keras.layers.Dense:
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError("DFR retrains a classifier's last Dense layer; this model has none")
    return dense[-1]


def balanced_draw(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a group-balanced subset: every present group down-sampled to the smallest."""
    present = [np.flatnonzero(groups == g) for g in range(GROUPS) if (groups == g).any()]
    n = min(len(idx) for idx in present)
    return np.sort(np.concatenate([rng.choice(idx, n, replace=False) for idx in present]))


def fit_head(embeddings, labels, groups, c: float, draws: int, rng) -> tuple[np.ndarray, float]:
    """Averaged L1 logistic regression on standardised embeddings -> (w, b) on the raw ones."""
    from sklearn.linear_model import LogisticRegression
    mean, scale = embeddings.mean(0), embeddings.std(0) + 1e-8
    z = (embeddings - mean) / scale
    coefs, intercepts = [], []
    for _ in range(draws):
        keep = balanced_draw(groups, rng)
        fit = LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear").fit(z[keep], labels[keep])
        coefs.append(fit.coef_[0])
        intercepts.append(fit.intercept_[0])
    w, b = np.mean(coefs, 0), float(np.mean(intercepts))
    return w / scale, b - float(np.sum(w * mean / scale))


def worst_group_accuracy(scores, labels, groups) -> float:
    """Of the head's logits `scores`; groups = 2 * label + marked."""
    correct = (scores > 0).astype(int) == labels
    return group_accuracy(correct, labels, groups % 2)["worst_group_accuracy"]


def retrain_last_layer(model: keras.Model, x: np.ndarray, labels: np.ndarray,
                       marked: np.ndarray, config: DFRConfig) -> dict:
    """Stage 2 on preprocessed inputs `x` (the held-out images): writes the chosen head into the
    model's last Dense layer (binary: one sigmoid unit, or two softmax units) and returns what
    it chose."""
    head = last_dense(model)
    units = head.units
    if units not in (1, 2):
        raise ValueError(f"DFR here handles binary heads (1 or 2 units), got {units}")
    embed = keras.Model(model.inputs, head.input)
    e = np.asarray(embed.predict(x, verbose=0), np.float64)
    labels = np.asarray(labels).astype(int)
    groups = 2 * labels + np.asarray(marked).astype(int)
    rng = np.random.default_rng(config.seed)
    half = rng.permutation(len(labels))
    retrain, tune = np.sort(half[: len(half) // 2]), np.sort(half[len(half) // 2:])
    scores = {}
    for c in config.c_grid:
        w, b = fit_head(e[retrain], labels[retrain], groups[retrain], c, config.draws, rng)
        scores[c] = worst_group_accuracy(e[tune] @ w + b, labels[tune], groups[tune])
    best = max(config.c_grid, key=lambda c: (scores[c], -c))   # ties: the stronger penalty
    w, b = fit_head(e[retrain], labels[retrain], groups[retrain], best, config.draws, rng)
    if units == 1:
        kernel, bias = w[:, None], np.array([b])
    else:   # softmax over two logits: their difference carries w·e + b
        kernel, bias = np.stack([-w / 2, w / 2], 1), np.array([-b / 2, b / 2])
    head.kernel.assign(kernel.astype(head.kernel.dtype))
    head.bias.assign(bias.astype(head.bias.dtype))
    return {"c": best, "worst_group_accuracy_by_c": {str(k): v for k, v in scores.items()},
            "retraining_images": int(len(retrain)), "tuning_images": int(len(tune)),
            "balanced_draw_size": int(len(balanced_draw(groups[retrain], rng))),
            "group_labels_used": int(len(labels))}


class DFR(Baseline):
    name = "dfr"
    config_class = DFRConfig
    stage_fields = ("dfr",)

    def plain_epochs(self, config):
        return 10 ** 9      # every epoch is the baseline's (capped at the study's epochs)

    def finish(self, model, data, study, config, warnings, run_dir=None, verbose=0):
        val = data["val"]
        if val.has_marker is None:
            raise ValueError("DFR's held-out set needs group labels (class x marker status); "
                             "these validation data carry no marker status")
        x = np.asarray(get_preprocessor(self.preprocessor)(val.images))
        return {"dfr": retrain_last_layer(model, x, val.labels, val.has_marker, config)}

    def describe(self, report, variant):
        d = report[variant]["training"].get("dfr")
        if not d:
            return []
        return ["", f"## {variant}: Deep Feature Reweighting (Kirichenko et al. 2023)", "",
                f"The baseline's features, last layer retrained on group-balanced draws of "
                f"{d['retraining_images']} validation images (class x marker groups; "
                f"{d['group_labels_used']} group labels), C = {d['c']} chosen by worst-group "
                f"accuracy on the other {d['tuning_images']}."]


register(DFR())

__all__ = ["DFR", "DFRConfig", "retrain_last_layer", "balanced_draw", "last_dense"]
