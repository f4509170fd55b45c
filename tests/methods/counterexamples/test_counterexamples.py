"""Counterexamples (Teso & Kersting 2019): the step trains on the images whose out-of-mask region
is another image's, labels kept - its CE equals the CE computed by hand on those images."""
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.losses import counterfactual_batch
from gfsr_tf.methods import get_method
from gfsr_tf.preprocessing import get_preprocessor

SIZE = 16


def test_the_step_trains_on_counterexamples_and_options_are_checked():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(2, 3, padding="same", name="features")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(h)))
    method = get_method("counterexamples")
    config = method.make_config({"rate": 1.0})

    # what make_step reads of a StudyConfig
    study = SimpleNamespace(train=SimpleNamespace(batch_size=4, mixed_precision=False),
                            model=SimpleNamespace(target_layer="features"))
    step = method.make_step(model, keras.optimizers.SGD(0.0), study, config)
    step.on_epoch(1)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    x[:, :3, -3:] = np.array([255, 0, 0, 255], np.float32)[:, None, None, None]   # a marker
    labels = np.array([1, 0, 0, 1])
    masks = np.zeros((4, SIZE, SIZE), np.float32)
    masks[:, 4:12, 4:12] = 1
    out = step({"image": tf.constant(x), "label": tf.constant(labels),
                "mask": tf.constant(masks)})
    # the step swaps the preprocessed images (ResNet50's caffe preprocessing, the default)
    x = get_preprocessor(method.preprocessor)(x)
    swapped = counterfactual_batch(tf.constant(x), tf.constant(masks),
                                   int(round(config.replace_dilation * SIZE))).numpy()
    assert not np.array_equal(swapped[:, :3, -3:], x[:, :3, -3:])   # markers moved
    np.testing.assert_array_equal(swapped[:, 5:11, 5:11], x[:, 5:11, 5:11])  # lungs kept
    p = model(swapped).numpy()[:, 0]
    ce = -np.mean(np.log(np.where(labels == 1, p, 1 - p)))
    assert float(out["ce"]) == pytest.approx(ce, rel=1e-5)
    assert method.training_fields(config)["counterexamples"]["rate"] == 1.0
    with pytest.raises(ValueError, match="rate must be in"):
        method.make_config({"rate": 0.0})
