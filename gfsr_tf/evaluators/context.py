"""What every evaluator of one model sees: the model, its preprocessor (from the model card),
the splits, the study config, the Grad-CAM layer, and caches, so predictions and explanation
maps are computed once per (model, split, layer) and the maps are saved for the report."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..datasets.base import ImageSet
from ..methods.base import Method

TEST_SPLITS = ("test_correlated", "test_decorrelated", "test")


def decide(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class decisions: P(class 1) >= threshold for binary (N,) probabilities, argmax otherwise."""
    return (probs >= threshold).astype(int) if probs.ndim == 1 else probs.argmax(1)


def eval_split(splits: dict) -> str:
    """The split robustness, localization and the examples are read on: where the benchmark's
    marker carries no label information, else the (last) test split."""
    if "test_decorrelated" in splits:
        return "test_decorrelated"
    return [s for s in TEST_SPLITS if s in splits][-1]


@dataclass
class EvalContext:
    model: object
    preprocess: object                     # the model card's preprocessor (a function)
    splits: dict[str, ImageSet]
    study: object                          # StudyConfig
    layer: str | None                      # the model's Grad-CAM layer
    method: object = None                  # methods.Method (its explainer); None: Grad-CAM
    out_dir: Path | None = None            # where explanations.npz goes
    full_model: object = None              # the trained model itself, when `model` is a view of
                                           # it (e.g. the gaze U-Net's decoder output)
    batch_size: int = 128
    verbose: int = 0                       # progress bars of the long evaluators (maps)
    # the map rule the evaluators read ("gradcam"; "layercam" for a model trained towards its
    # LayerCAM: the goals judge the map the model was trained and is shown with)
    saliency: str = "gradcam"
    _probs: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)

    @property
    def tests(self) -> list[str]:
        return [s for s in TEST_SPLITS if s in self.splits]

    @property
    def eval_split(self) -> str:
        return eval_split(self.splits)

    def predict(self, images: np.ndarray, key: str | None = None) -> np.ndarray:
        """P(class 1) for binary heads, (N, C) probabilities otherwise (cached under `key`)."""
        if key is not None and key in self._probs:
            return self._probs[key]
        b = self.batch_size
        probs = np.concatenate([np.asarray(self._forward(self.preprocess(images[i:i + b])))
                                for i in range(0, len(images), b)])
        probs = probs[:, 0] if probs.shape[-1] == 1 else probs
        if key is not None:
            self._probs[key] = probs
        return probs

    @functools.cached_property
    def _forward(self):
        """The model's inference pass, traced once (an eager Keras call runs op by op: the
        evaluators' thousands of predictions took 3x longer)."""
        model = self.model
        return tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def heatmaps(self, split: str, layer: str | None = None) -> np.ndarray:
        """The true-class explanation of every image of `split` at `layer` (N, H, W), computed
        once and kept for explanations.npz."""
        layer = layer or self.layer
        key = f"{split}/{layer}"
        if key not in self.maps:
            data = self.splits[split]
            x = np.asarray(self.preprocess(data.images))
            explain = (self.method or Method()).explain  # no method: plain Grad-CAM
            if self.saliency != "gradcam":
                from functools import partial
                from ..saliency import explain as saliency_explain
                explain = partial(saliency_explain, rule=self.saliency)
            self.maps[key] = explain(self.model, x, layer=layer, class_index=data.labels,
                                     batch_size=self.batch_size).heatmaps.astype(np.float32)
        return self.maps[key]

    def has_layer(self, layer: str) -> bool:
        try:
            self.model.get_layer(layer)
            return True
        except ValueError:
            return False

    def save(self) -> Path | None:
        """<variant>/explanations.npz: every map computed, float16 (N, H, W) per split/layer."""
        if self.out_dir is None or not self.maps:
            return None
        path = Path(self.out_dir) / "explanations.npz"
        np.savez_compressed(path, **{k: v.astype(np.float16) for k, v in self.maps.items()})
        return path
