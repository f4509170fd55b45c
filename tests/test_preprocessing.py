import pytest
import numpy as np
import keras

from gfsr_tf.preprocessing import PREPROCESSORS, get_preprocessor, preprocess, to_rgb


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


def test_named_preprocessors():
    pixels = np.array([[[[0, 127.5, 255]]]], np.float32)
    np.testing.assert_array_equal(get_preprocessor("none")(pixels).numpy(), pixels)
    np.testing.assert_allclose(get_preprocessor("unit")(pixels).numpy(), [[[[0, 0.5, 1]]]])
    assert get_preprocessor("resnet50_caffe") is preprocess and set(PREPROCESSORS) >= {"none"}
    with pytest.raises(ValueError, match="unknown preprocessor 'vgg'"):
        get_preprocessor("vgg")
