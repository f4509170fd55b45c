"""The example images of the report's Grad-CAM grid (the paper's Fig 9): the same images for
every variant, their true-class maps and probabilities saved with the variant's explanations."""
from __future__ import annotations

import numpy as np


def example_index(data, n: int) -> np.ndarray:
    """Binary: both classes, marked and unmarked images in turn (class 1 marked, class 1
    unmarked, class 0 marked, class 0 unmarked, ...), so the grid shows where each model looks
    with and without the shortcut; multi-class: the first images of each class in turn."""
    if data.num_classes == 2:
        marked = data.has_marker if data.has_marker is not None else np.zeros(len(data), bool)
        groups = [np.flatnonzero((data.labels == c) & (marked == m))
                  for c in (1, 0) for m in (True, False)]
    else:
        groups = [np.flatnonzero(data.labels == c) for c in range(data.num_classes)]
    pick = np.asarray([g[i] for i in range(max(map(len, groups), default=0))
                       for g in groups if i < len(g)], int)
    return np.asarray(pick[:n], int)


def save_examples(path, data, index, split: str = "") -> None:
    """examples.npz in the run folder: the chosen images, labels, marker status, lesion masks
    and the split they come from."""
    lesions = data.lesions[index] if data.lesions is not None else np.zeros((0,))
    marked = data.has_marker[index] if data.has_marker is not None else np.zeros((0,), bool)
    np.savez_compressed(path, index=index, images=data.images[index], labels=data.labels[index],
                        lesions=lesions, has_marker=marked, split=np.asarray(split),
                        class_names=np.asarray(data.class_names))


def evaluate(ctx) -> dict:
    name = ctx.eval_split
    data = ctx.splits[name]
    index = example_index(data, ctx.study.gradcam_examples)
    if len(index) == 0:
        return {}
    heat = ctx.heatmaps(name)[index]
    probs = ctx.predict(data.images, name)[index]
    labels = data.labels[index]
    p_true = np.where(labels == 1, probs, 1 - probs) if probs.ndim == 1 else \
        probs[np.arange(len(index)), labels]
    ctx.maps["examples/heatmaps"] = heat
    ctx.maps["examples/p_true"] = np.asarray(p_true, np.float32)
    return {}
