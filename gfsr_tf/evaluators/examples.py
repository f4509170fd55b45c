"""The example images of the report's Grad-CAM grid (the paper's Fig 9): the same images for
every variant, their true-class maps and probabilities saved with the variant's explanations."""
from __future__ import annotations

import numpy as np


def example_index(data, n: int) -> np.ndarray:
    """Binary: positives, marked ones first (they show the shortcut best); multi-class: the
    first images of each class in turn."""
    if data.num_classes == 2:
        pick = np.flatnonzero(data.labels == 1)
        if data.has_marker is not None:
            pick = np.concatenate([pick[data.has_marker[pick]], pick[~data.has_marker[pick]]])
    else:
        per_class = [np.flatnonzero(data.labels == c) for c in range(data.num_classes)]
        pick = np.asarray([p[i] for i in range(max(map(len, per_class), default=0))
                           for p in per_class if i < len(p)], int)
    return np.asarray(pick[:n], int)


def save_examples(path, data, index) -> None:
    """examples.npz in the run folder: the chosen images, labels and lesion masks."""
    lesions = data.lesions[index] if data.lesions is not None else np.zeros((0,))
    np.savez_compressed(path, index=index, images=data.images[index], labels=data.labels[index],
                        lesions=lesions, class_names=np.asarray(data.class_names))


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
