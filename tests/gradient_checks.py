"""Helpers shared by the loss tests of the explanation-guided methods (RRR, HINT, GAIN, the gaze
heatmap losses): a tiny conv classifier, a batch with evidence inside a mask and a shortcut
outside it, and a gradient check against central finite differences."""
import keras
import numpy as np
import pytest
import tensorflow as tf

SIZE = 8


def tiny_classifier(units: int = 1, seed: int = 0, dtype: str = "float32") -> keras.Model:
    """(SIZE, SIZE, 2) -> tanh conv "features" (3 channels) -> GAP -> sigmoid / softmax, with
    weights large enough that gradients stand well above float32 round-off."""
    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=1.0, seed=seed)
    inputs = keras.Input((SIZE, SIZE, 2), dtype=dtype)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="features",
                            kernel_initializer=init, dtype=dtype)(inputs)
    h = keras.layers.GlobalAveragePooling2D(dtype=dtype)(h)
    out = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax",
                             kernel_initializer=init, dtype=dtype)(h)
    return keras.Model(inputs, out)


def evidence_batch(n: int = 32, seed: int = 2) -> dict:
    """The class as a brightness on the left (inside the mask, columns 0-3) and as a shortcut in
    the top-right corner (outside it)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.normal(0, 0.2, (n, SIZE, SIZE, 2)).astype(np.float32)
    images[:, :, :4] += (labels * 1.0 - 0.5)[:, None, None, None]
    images[:, :2, 6:] += (labels * 1.0 - 0.5)[:, None, None, None]
    mask = np.zeros((n, SIZE, SIZE), np.float32)
    mask[:, :, :4] = 1
    return {"image": tf.constant(images), "label": tf.constant(labels), "mask": tf.constant(mask)}


def assert_matches_finite_differences(loss, variable, indices, eps=1e-6, rel=1e-4, abs=1e-9):
    """d loss() / d variable at `indices` by the tape against central differences."""
    with tf.GradientTape() as tape:
        value = loss()
    grad = tape.gradient(value, variable).numpy()
    base = variable.numpy().copy()
    for idx in indices:
        numeric = []
        for sign in (1, -1):
            shifted = base.copy()
            shifted[idx] += sign * eps
            variable.assign(shifted)
            numeric.append(float(loss()))
        variable.assign(base)
        assert grad[idx] == pytest.approx((numeric[0] - numeric[1]) / (2 * eps), rel=rel,
                                          abs=abs), idx
    return float(value), grad
