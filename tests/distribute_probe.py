"""Run in a fresh process by tests/test_distribute.py (logical CPU devices must be configured
before TensorFlow initialises): one optimisation step of a method on the same global batch with
one device and with `--replicas` logical CPU replicas; prints JSON with both first-step losses
and the largest difference of the weight updates. Adam's epsilon is raised to 1e3 so its first
update, -lr * g / (|g| + eps), is linear in the gradient g to ~|g| / eps: equal updates mean
equal all-reduced gradients."""
import argparse
import json
from pathlib import Path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="baseline")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--sync-batchnorm", action="store_true")
    p.add_argument("--options", default="{}", help="the method's options (JSON)")
    p.add_argument("--fit-epochs", type=int, default=0, help="also train this many epochs "
                   "both ways (from the same start) and print both loss curves")
    p.add_argument("--on-disk", action="store_true", help="the replicated run reads its images "
                   "from a memmap and its masks through a row store (streamed per batch)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    from gfsr_tf.training.distribute import make_strategy, synchronise_batchnorm
    strategy = make_strategy("mirrored", cpu_replicas=args.replicas)
    import numpy as np
    import tensorflow as tf
    from gfsr_tf.config import BenchmarkConfig, TrainConfig
    from gfsr_tf.datasets.synthetic import make_split
    from gfsr_tf.guidance.masks import relevance_masks
    from gfsr_tf.methods import get_method
    from gfsr_tf.models import build_classifier
    from gfsr_tf.presets import preset
    from gfsr_tf.training import Trainer
    data = make_split(BenchmarkConfig(image_size=32, seed=0), "train", 16)
    targets = {"mask": relevance_masks(data)}
    streamed, streamed_targets = data, targets
    if args.on_disk:
        np.save(Path(args.out) / "images.npy", data.images)
        streamed = data.subset(np.arange(len(data)))
        streamed.images = np.load(Path(args.out) / "images.npy", mmap_mode="r")

        class Rows:  # the row-store protocol (`datasets.streaming.gather`)
            shape, dtype = targets["mask"].shape, targets["mask"].dtype

            def __len__(self):
                return len(targets["mask"])

            def gather(self, index):
                return targets["mask"][index]
        streamed_targets = {"mask": Rows()}
    study = preset("smoke")
    train = TrainConfig(batch_size=8, seed=0, deterministic=False)
    method = get_method(args.method)
    options = method.make_config(json.loads(args.options))
    runs = {}
    for name, strat in (("one", tf.distribute.get_strategy()), ("replicated", strategy)):
        with strat.scope():
            model = build_classifier(2, (32, 32, 3), backbone="small_cnn", dropout=0.0, seed=0,
                                     bn_momentum=0.9)
            if args.sync_batchnorm and name == "replicated":
                synchronise_batchnorm(model)
        trainer = Trainer(model, Path(args.out) / name, method.step_factory(options, study),
                          train=train, verbose=0, strategy=strat)
        if hasattr(trainer.step, "on"):
            trainer.step.on.assign(1.0)
            trainer.step.on_decision.assign(1.0)
        trainer.optimizer.epsilon = 1e3
        before = [v.numpy().copy() for v in model.trainable_variables]
        batches = trainer.distributed_batches(streamed, streamed_targets, 1) \
            if trainer.distributed else trainer._dataset(data, targets, 1)
        out = trainer.train_step(next(iter(batches)))
        runs[name] = {"loss": float(out["loss"]),
                      "delta": [v.numpy() - b for v, b in zip(model.trainable_variables, before)]}
    curves = {}
    for name, strat in (("one", tf.distribute.get_strategy()), ("replicated", strategy)):
        if not args.fit_epochs:
            break
        with strat.scope():
            model = build_classifier(2, (32, 32, 3), backbone="small_cnn", dropout=0.0, seed=0,
                                     bn_momentum=0.9)
            if args.sync_batchnorm and name == "replicated":
                synchronise_batchnorm(model)
        fit = TrainConfig(batch_size=8, seed=0, deterministic=False, epochs=args.fit_epochs,
                          monitor="last")
        history = Trainer(model, Path(args.out) / f"fit_{name}",
                          method.step_factory(options, study), train=fit, verbose=0,
                          strategy=strat).fit(*((streamed, data, streamed_targets)
                                              if name == "replicated" else (data, data, targets)))
        curves[name] = [h["loss"] for h in history]
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(runs["one"]["delta"],
                                                            runs["replicated"]["delta"]))
    scale = max(float(np.max(np.abs(a))) for a in runs["one"]["delta"])
    print(json.dumps({"loss_one": runs["one"]["loss"], "loss_replicated":
                      runs["replicated"]["loss"], "max_update_difference": diff,
                      "max_update": scale, "replicas": strategy.num_replicas_in_sync,
                      "curves": curves}))


if __name__ == "__main__":
    main()
