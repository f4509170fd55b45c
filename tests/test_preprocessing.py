import numpy as np
import keras

from gfsr_tf.preprocessing import preprocess, resize, to_rgb


def test_matches_keras_resnet50_preprocess_input():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(rgb.copy())
    np.testing.assert_allclose(preprocess(rgb).numpy(), expected, atol=1e-4)


def test_grayscale_replicated_then_preprocessed_like_rgb():
    gray = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    expected = keras.applications.resnet50.preprocess_input(np.repeat(gray, 3, -1).astype(np.float32))
    np.testing.assert_allclose(preprocess(gray).numpy(), expected, atol=1e-4)
    assert to_rgb(gray).shape == (2, 4, 4, 3)


def test_resize_keeps_range_and_shape():
    x = np.full((1, 40, 40, 1), 200, np.uint8)
    out = resize(x, 16).numpy()
    assert out.shape == (1, 16, 16, 1)
    np.testing.assert_allclose(out, 200, atol=1e-3)
