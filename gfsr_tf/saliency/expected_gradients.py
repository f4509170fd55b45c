"""Expected gradients (Erion et al.; shap's GradientExplainer): per image x and class j,
phi = E_{b ~ background, t ~ U(0, 1)} [(x - b) * grad_x f_j(b + t (x - b))], estimated from
`n_samples` draws; the map is the channel mean of |phi|. f_j is the model's output j - for this
project's classifiers the class's sigmoid (or softmax) probability.

The `shap` package does the estimation: its TensorFlow path runs on Keras 3 from TF 2.16 on
(`training=False` in a traced gradient; older TF calls the removed
`tf.keras.backend.learning_phase`). It draws (b, t) with numpy's global generator seeded by
`rseed` per output column, one image after another, so a seed reproduces a map exactly.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm


def background_sample(images: np.ndarray, n: int = 50, seed: int = 0) -> np.ndarray:
    """SegX's default background: `n` seeded draws (without replacement) from `images`."""
    images = np.asarray(images)
    pick = np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False)
    return images[np.sort(pick)]


def attributions(model, images, class_index, background, *, n_samples: int = 50,
                 seed: int = 0, batch_size: int = 50, verbose: bool = False) -> np.ndarray:
    """phi (N, H, W, C) for model inputs `images` (already preprocessed) and one class per image
    (a single-output model: its one output whatever the class; phi of 1 - p is -phi of p)."""
    import warnings
    import shap
    # shap calls the model on a list of inputs: Keras warns once per trace that the structure
    # differs from the functional model's single input; the call is still correct
    warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
    images = np.asarray(images, np.float32)
    background = np.asarray(background, np.float32)
    if background.shape[1:] != images.shape[1:]:
        raise ValueError(f"background {background.shape[1:]} and images {images.shape[1:]} "
                         "differ in shape")
    cls = np.broadcast_to(np.asarray(class_index, np.int64), (len(images),))
    explainer = shap.GradientExplainer(model, background, batch_size=batch_size)
    if not explainer.explainer.multi_output:
        return np.asarray(explainer.shap_values(images, nsamples=n_samples, rseed=seed),
                          np.float32).reshape(images.shape)
    out = np.zeros(images.shape, np.float32)
    for i in tqdm(range(len(images)), desc="expected gradients", disable=not verbose,
                  leave=False):
        phi, _ = explainer.shap_values(images[i:i + 1], nsamples=n_samples,
                                       ranked_outputs=np.array([[cls[i]]]),
                                       output_rank_order="custom", rseed=seed + i)
        out[i] = np.asarray(phi, np.float32).reshape(images.shape[1:])
    return out


def expected_gradients(model, images, class_index, background, *, n_samples: int = 50,
                       seed: int = 0, batch_size: int = 50, verbose: bool = False) -> np.ndarray:
    """Maps (N, H, W): channel mean of |phi|, divided by its per-image maximum (so [0, 1])."""
    phi = attributions(model, images, class_index, background, n_samples=n_samples, seed=seed,
                       batch_size=batch_size, verbose=verbose)
    heat = np.abs(phi).mean(-1)
    top = heat.reshape(len(heat), -1).max(1)
    return heat / np.where(top > 0, top, 1.0)[:, None, None]
