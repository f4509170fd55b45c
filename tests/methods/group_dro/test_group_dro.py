"""Group DRO (Sagawa et al. 2020): one step's group weights and robust loss by hand, the worst
group's weight rising over steps, and a resumed run equal to an uninterrupted one."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfsr_tf.config import BenchmarkConfig, TrainConfig
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.methods.group_dro import GROUPS, GroupDROConfig, GroupDROStep


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(3, 3, activation="relu", name="features")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))


def test_one_step_updates_the_group_weights_and_loss_as_algorithm_1_by_hand():
    model = _tiny()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 1, 0])
    marked = np.array([0, 1, 1, 1, 0, 0])          # groups 0, 1, 3, 3, 2, 0 (2·class + marker)
    eta = 0.5
    step = GroupDROStep(model, keras.optimizers.SGD(0.0), config=GroupDROConfig(eta=eta),
                        target_layer="features", preprocessor="none")
    out = step({"image": tf.constant(images), "label": tf.constant(labels),
                "marked": tf.constant(marked)})
    p = model(images, training=True).numpy()[:, 0].astype(np.float64)
    ce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    groups = 2 * labels + marked
    loss_g = np.array([ce[groups == g].mean() for g in range(GROUPS)])
    q = np.full(GROUPS, 0.25) * np.exp(eta * loss_g)
    q /= q.sum()
    np.testing.assert_allclose(step.q.numpy(), q, rtol=1e-5)
    assert float(out["loss"]) == pytest.approx(float(q @ loss_g), rel=1e-5)
    assert float(out["worst_group_ce"]) == pytest.approx(loss_g.max(), rel=1e-5)
    # a group absent from the batch keeps its weight before the renormalisation
    step.q.assign([0.25] * 4)
    out = step({"image": tf.constant(images[:2]), "label": tf.constant(labels[:2]),
                "marked": tf.constant(marked[:2])})                 # groups 0 and 1 only
    q = np.array([0.25 * np.exp(eta * ce[0]), 0.25 * np.exp(eta * ce[1]), 0.25, 0.25])
    np.testing.assert_allclose(step.q.numpy(), q / q.sum(), rtol=1e-5)


def test_the_group_weights_are_checkpointed_so_a_resumed_run_matches(tmp_path):
    """The benchmark's marker status reaches the step as its groups, and q - the step's state -
    is restored with the weights: two epochs at once and one + one resumed end equal."""
    from gfsr_tf.training import Trainer
    data = make_split(BenchmarkConfig(image_size=8, n_train=48), "train")
    val = make_split(BenchmarkConfig(image_size=8, n_val=16), "val")
    config = GroupDROConfig(eta=0.1)

    def trainer(run_dir, epochs):
        train = TrainConfig(epochs=epochs, batch_size=8, steps_per_epoch=3, seed=0,
                            deterministic=True, keep_checkpoints=True)
        step = lambda model, optimizer: GroupDROStep(  # noqa: E731
            model, optimizer, config=config, target_layer="features", preprocessor="unit")
        return Trainer(_tiny(), run_dir, step, train=train, verbose=0)

    whole = trainer(tmp_path / "whole", 2)
    whole.fit(data, val)
    q = whole.step.q.numpy()
    assert q.sum() == pytest.approx(1.0) and not np.allclose(q, 0.25), q
    first = trainer(tmp_path / "resumed", 1)
    first.fit(data, val)
    resumed = trainer(tmp_path / "resumed", 2)
    resumed.fit(data, val)
    np.testing.assert_allclose(resumed.step.q.numpy(), q, rtol=1e-6)
    for a, b in zip(resumed.model.weights, whole.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    logs = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [h["epoch"] for h in logs] == [1, 2]
