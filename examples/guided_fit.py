"""Train a keras.applications classifier with GFSR's guided focus through Keras' own `fit()`.

    python examples/guided_fit.py --out guided_fit/        # about a minute on 2 CPU cores

A MobileNetV2 with its own softmax head (no ImageNet weights: nothing is downloaded) learns
pneumonia vs normal on the embedded shortcut benchmark, its Grad-CAM at `out_relu` pulled
towards the lung fields. The callbacks write Grad-CAM overlays of six validation images per
epoch and log the shortcut audit's marker figures on the validation twins; CSVLogger keeps the
history. The trained classifier is saved as a plain `.keras` file that loads without gfsr_tf.
Copy this file anywhere: it imports gfsr_tf like any installed library.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gfsr_tf  # noqa: E402
from gfsr_tf.callbacks import GradCamOverlays, ShortcutAudit  # noqa: E402
from gfsr_tf.config import BenchmarkConfig  # noqa: E402
from gfsr_tf.datasets.synthetic import make_benchmark  # noqa: E402


def rgb(images: np.ndarray) -> np.ndarray:
    """uint8 gray (N, H, W, 1) -> MobileNetV2's input: 3 channels scaled to [-1, 1]."""
    x = np.repeat(images, 3, axis=-1).astype(np.float32)
    return keras.applications.mobilenet_v2.preprocess_input(x)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="guided_fit", help="output folder (default: guided_fit)")
    p.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    p.add_argument("--n-train", type=int, default=256, help="training images (default 256)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--relevance-weight", type=float, default=1.0, help="GFSR's lambda")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)

    data = make_benchmark(BenchmarkConfig(image_size=args.size, n_train=args.n_train,
                                          n_val=64, n_test=64, seed=0))
    train, val = data["train"], data["val"]
    train_ds = (tf.data.Dataset.from_tensor_slices(
        ({"image": rgb(train.images), "mask": train.lungs}, train.labels))
        .shuffle(len(train), seed=0).batch(32))
    val_ds = tf.data.Dataset.from_tensor_slices(({"image": rgb(val.images)}, val.labels)).batch(32)

    classifier = keras.applications.MobileNetV2(weights=None, classes=2, alpha=0.35,
                                                input_shape=(args.size, args.size, 3))
    # From scratch, MobileNetV2's BatchNorm momentum (0.999) needs thousands of steps before its
    # running statistics fit: until then inference mode (validation, the audit, the saved
    # model) predicts one class for everything. 0.9 catches up within a few epochs.
    for layer in classifier.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    guided = gfsr_tf.GuidedModel(classifier, layer="out_relu",
                                 relevance_weight=args.relevance_weight)
    guided.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    callbacks = [
        keras.callbacks.CSVLogger(str(out / "history.csv")),
        GradCamOverlays(rgb(val.images[:6]), str(out / "overlays"), layer="out_relu"),
        ShortcutAudit(rgb(val.images), rgb(val.twins), val.labels, val.has_marker),
    ]
    history = guided.fit(train_ds, validation_data=val_ds, epochs=args.epochs,
                         callbacks=callbacks, verbose=2).history
    guided.classifier.save(out / "classifier.keras")
    summary = {k: [float(v) for v in values] for k, values in history.items()}
    (out / "history.json").write_text(json.dumps(summary, indent=1))
    print(f"relevance loss {summary['relevance'][0]:.3f} -> {summary['relevance'][-1]:.3f}; "
          f"validation marker AUC {summary['audit_marker_auc'][-1]:.3f}; "
          f"classifier: {out / 'classifier.keras'}")
    return summary


if __name__ == "__main__":
    main()
