"""The training-step seam: a method's step is a `TrainStep` (one optimisation step on a dict
batch, run traced by the Trainer), so the Trainer knows nothing of any method's losses."""
from __future__ import annotations

import keras
import tensorflow as tf

from ..saliency.cam_model import CamModel
from ..preprocessing import get_preprocessor
from ..saliency.gradcam import full_precision, predicted_class


def classification_loss(logits: tf.Tensor, labels: tf.Tensor,
                        multi_label: bool = False, label_sets=None) -> tf.Tensor:
    """Per-image CE from logits: binary (single unit), sparse categorical, or with `multi_label`
    (one sigmoid per class) the mean over classes of the BCE with the (N, K) 0/1 `label_sets`
    (multi-label data), else with the one-hot labels."""
    if multi_label and label_sets is not None:
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            tf.cast(label_sets, logits.dtype), logits), -1)
    if logits.shape[-1] == 1:
        return tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(labels, tf.float32), logits[:, 0])
    if multi_label:
        onehot = tf.one_hot(tf.cast(labels, tf.int32), logits.shape[-1], dtype=logits.dtype)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(onehot, logits), -1)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)


def kernel_l2(model) -> tf.Tensor:
    """Σ θ² over a model's trainable kernels (convolution and dense weights; biases and
    BatchNorm parameters excluded): the λ2 term of RRR and Group DRO."""
    kernels = [v for v in model.trainable_variables if "kernel" in v.path]
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in kernels])


def accuracy(logits: tf.Tensor, labels: tf.Tensor, label_sets=None) -> tf.Tensor:
    """Share of correct decisions: per image (argmax / p > 0.5), or with `label_sets` per
    (image, class) pair at p > 0.5."""
    if label_sets is not None:
        return tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.int32),
                                               tf.cast(label_sets, tf.int32)), tf.float32))
    return tf.reduce_mean(tf.cast(predicted_class(logits) == tf.cast(labels, tf.int32),
                                  tf.float32))


class TrainStep:
    """One step of a method. Subclasses implement `__call__(batch) -> {metric: scalar}` and apply
    their own gradients (a fused step computes them its own way).

    batch: {"image": raw pixels (B, H, W, C), "label": (B,), "label_set": (B, K) 0/1 on
    multi-label data, the step's `extra_inputs`, plus the per-image targets the step lists in
    `targets` (e.g. "mask": (B, H, W) relevance masks)}.
    """
    targets: tuple[str, ...] = ()
    # per-sample model inputs beside the image, {batch key: (ImageSet field, dtype)}: the
    # trainer adds them as batch columns and passes them to `logits(x, *values)` in this order
    # (gaze intensity: {"prompt": ("prompts", "int32")})
    extra_inputs: dict = {}
    # per-sample training columns that are not model inputs, {batch key: (ImageSet field,
    # dtype)} (Group DRO: the marker status that defines its groups)
    batch_fields: dict = {}

    def __init__(self, model: keras.Model, optimizer, *, preprocessor: str = "resnet50_caffe",
                 logits_layer: str | None = None, mixed_precision: bool = False):
        self.model, self.optimizer = model, optimizer
        self.preprocess = get_preprocessor(preprocessor)
        self.mixed_precision = mixed_precision
        # (activations of a 4-D layer, logits): the logits of any classifier with reachable ones
        self.cam_model = CamModel(model, logits_layer)

    def __call__(self, batch: dict) -> dict:
        raise NotImplementedError

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """Inference logits of preprocessed images (validation)."""
        return self.cam_model(x, training=False)[1]

    def on_epoch(self, epoch: int) -> dict:
        """Called before each epoch (e.g. a loss-weight warm-up); returns values to log."""
        return {}

    def prepare(self, train) -> None:
        """Called by the trainer with the training ImageSet before the first epoch it runs (a
        step that needs the training images between epochs keeps what it needs)."""

    def trace_key(self):
        """What the traced step depends on beyond its inputs (e.g. which layers are frozen):
        when it changes after `on_epoch`, the trainer traces the step again."""
        return None

    def state(self) -> dict:
        """{name: tf.Variable} the step carries from step to step (none for most methods),
        saved in the trainer's checkpoints so that a resumed run equals an uninterrupted one."""
        return {}

    def scaled(self, loss):
        """The loss to differentiate: loss-scaled under mixed precision (record it on the tape)."""
        return self.optimizer.scale_loss(loss) if self.mixed_precision else loss

    def apply_gradients(self, tape: tf.GradientTape, scaled_loss: tf.Tensor) -> None:
        variables = self.model.trainable_variables
        self.apply(tape.gradient(scaled_loss, variables), variables)

    def apply(self, grads, variables) -> None:
        """The optimizer update every step ends with. Under a tf.distribute strategy each
        replica's loss is the mean over its share of the global batch and Keras all-reduces the
        gradients by SUM, so they are divided by the replica count first: the update is the
        global batch's mean gradient (tf.nn.compute_average_loss's scaling, applied once here
        for every method's step)."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            grads = [None if g is None else _divided(g, replicas) for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))  # unscales under mixed precision


def _divided(grad, by: int):
    """grad / by, also for the sparse gradients of an Embedding (IndexedSlices)."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values / by, grad.indices, grad.dense_shape)
    return grad / by


class ClassificationStep(TrainStep):
    """Plain supervised training: mean CE of the classifier's logits."""

    def __call__(self, batch):
        x = self.preprocess(batch["image"])
        multi = self.cam_model.multi_label
        sets = batch.get("label_set") if multi else None
        with tf.GradientTape() as tape:
            _, logits = self.cam_model(x, training=True)
            logits = full_precision(logits)
            ce = tf.reduce_mean(classification_loss(logits, batch["label"], multi, sets))
            scaled = self.scaled(ce)
        self.apply_gradients(tape, scaled)
        return {"loss": ce, "ce": ce, "acc": accuracy(logits, batch["label"], sets)}
