"""The generic training loop: any method's `TrainStep` on ImageSet splits.

Per epoch: a data order and dropout draws seeded by (seed, epoch), a progress bar, one JSON line
of metrics (`metrics.jsonl`), validation, a checkpoint (model, optimizer, epoch, best score; only
the newest is kept) and, on improvement, `best.keras` written atomically. Rerunning the same
command resumes where it stopped; a finished run deletes its checkpoints (unless
`TrainConfig.keep_checkpoints`) and a rerun reads its history back. The artifact is always the
plain Keras model.

Shared epochs: a run can leave a snapshot of itself after epoch k (`snapshot_epochs`) and another
run of the same model, data and training config can start from it (`start_from`) instead of
repeating those epochs - the study uses this for a guided method's warm-up, which is plain
training identical to the baseline's (same seed, data order and initial weights).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config import TrainConfig
from ..datasets.base import ImageSet
from ..datasets.streaming import gather, on_disk
from ..saliency.gradcam import probabilities_from_logits
from .schedules import get_schedule
from .step import TrainStep, classification_loss


# what TensorFlow raises on the survivors when a worker dies mid-run: its heartbeats stop
# (Unavailable; measured: ~8 s after the kill), or a collective times out / is aborted
PEER_LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
             tf.errors.CancelledError, tf.errors.AbortedError)


class PeerWorkerLost(ConnectionError):
    """A multi-worker run lost a worker (an OSError: the CLI prints it as one line)."""


def resolve_jit(jit_compile) -> bool:
    """"auto": XLA on when a GPU is visible (measured slower on this project's CPUs)."""
    if jit_compile == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(jit_compile)


def make_optimizer(train: TrainConfig, model: keras.Model):
    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(train.learning_rate, weight_decay=train.weight_decay,
                                           clipvalue=train.clip_value)
    else:
        optimizer = keras.optimizers.Adam(train.learning_rate, clipvalue=train.clip_value)
    if train.mixed_precision:  # dynamic loss scaling keeps float16 gradients from underflowing
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


class Trainer:
    """Train `model` with the step that `make_step(model, optimizer)` returns (a method's
    `TrainStep`; see `gfsr_tf.methods`).

        method = get_method("gfsr")
        Trainer(model, "runs/mine", method.step_factory(RelevanceConfig(), study),
                train=TrainConfig(epochs=20)).fit(train_set, val_set, {"mask": masks})
    """

    def __init__(self, model: keras.Model, run_dir: str | os.PathLike,
                 make_step: Callable[..., TrainStep], *, train: TrainConfig = TrainConfig(),
                 verbose: int = 1, strategy: tf.distribute.Strategy | None = None):
        """strategy: a tf.distribute strategy (`training.distribute`); the model must have been
        built in its scope. None: the default (one device)."""
        self.model, self.cfg, self.verbose = model, train, verbose
        self.strategy = strategy or tf.distribute.get_strategy()
        self.multiworker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        self.distributed = self.strategy.num_replicas_in_sync > 1 or self.multiworker
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.strategy.scope():
            self.optimizer = make_optimizer(train, model)
            self.step = make_step(model, self.optimizer)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
            core = dict(model=model, optimizer=self.optimizer, epoch=self.epoch, best=self.best)
            # what another method's snapshot holds (a shared warm-up starts from it)
            self.shared_checkpoint = tf.train.Checkpoint(**core)
            # plus the step's own state (Group DRO's group weights), so that a resumed run
            # continues exactly where it stopped
            state = self.step.state()
            self.checkpoint = tf.train.Checkpoint(**core, step_state=tf.train.Checkpoint(
                **state)) if state else self.shared_checkpoint
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_dir / "checkpoints",
                                                  max_to_keep=2 if self.multiworker else 1)
        self._jit = resolve_jit(train.jit_compile)
        self._trace()
        self._logits = tf.function(self.step.logits, jit_compile=self._jit,
                                   reduce_retracing=True)

    def _trace(self) -> None:
        """The public step API (benchmarks, tests): one traced optimisation step on a dict batch
        (under a strategy: a distributed batch, as `distributed_batches` yields). Traced again
        whenever the step's `trace_key` changes (a step that freezes layers between epochs)."""
        step = self._replicated_step if self.distributed else self.step
        self.train_step = tf.function(step, jit_compile=self._jit and not self.distributed,
                                      reduce_retracing=True)
        self._traced_for = self.step.trace_key()

    @contextlib.contextmanager
    def _peer_guard(self, epoch: int):
        """Under multiworker, a peer that stops responding (TensorFlow notices its missing
        heartbeats, or a collective times out) in this epoch's batches or steps is one clear
        error, not a traceback."""
        try:
            yield
        except PEER_LOST as exc:
            if not self.multiworker:
                raise
            kept = int(self.epoch.numpy())
            raise PeerWorkerLost(
                f"multiworker: a peer worker stopped responding during epoch {epoch} "
                f"({type(exc).__name__}); "
                + (f"the checkpoint after epoch {kept} is kept: " if kept else "")
                + "restart every worker with the same command to "
                + ("resume" if kept else "start again")) from None

    def _agree_on_epoch(self) -> None:
        """Every worker resumes from the same epoch. Each restores its own copy of the
        checkpoint, and a worker killed between the chief's save and its own holds one epoch
        fewer: all then go back to the lowest of their latest epochs, which every worker still
        holds (multi-worker runs keep two checkpoints), instead of training different weights
        in lockstep."""
        mine = int(self.epoch.numpy())
        e = tf.constant([float(mine)], tf.float64)
        epochs = self.strategy.gather(self.strategy.run(lambda: tf.identity(e)), axis=0)
        low = int(np.min(epochs.numpy()))
        if low == mine:
            return
        path = next((c for c in self.manager.checkpoints if c.endswith(f"-{low}")), None)
        if path is None:
            raise PeerWorkerLost(
                f"multiworker: the workers hold checkpoints of different epochs ({mine} here, "
                f"{low} on another) and this one no longer has epoch {low}'s; delete every "
                f"worker's {self.run_dir.name}/checkpoints and rerun")
        self.checkpoint.restore(path).assert_existing_objects_matched()
        if self.verbose:
            print(f"going back to epoch {low}, the newest epoch every worker holds")

    def _replicated_step(self, batch):
        """The method's step on every replica's share; metrics averaged over replicas."""
        out = self.strategy.run(self.step, args=(batch,))
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in out.items()}

    def predict_logits(self, images: np.ndarray, batch_size: int | None = None,
                       data: ImageSet | None = None) -> np.ndarray:
        """Inference logits; `data` supplies the step's extra per-sample inputs (a prompted
        model's prompts), row-aligned with `images`."""
        batch_size = batch_size or self.cfg.batch_size
        extra = [values for values, _ in self._extra_inputs(data).values()]
        out = []
        for i in range(0, len(images), batch_size):
            x = self.step.preprocess(images[i:i + batch_size])
            out.append(self._logits(x, *(v[i:i + batch_size] for v in extra)).numpy())
        return np.concatenate(out)

    def _extra_inputs(self, data: ImageSet | None) -> dict:
        """{batch key: (values, dtype)} of the step's extra inputs, read from `data`."""
        out = {}
        for key, (field, dtype) in self.step.extra_inputs.items():
            values = None if data is None else getattr(data, field)
            if values is None:
                raise ValueError(f"this method's model also takes per-sample {field!r}, which "
                                 "the data do not carry")
            out[key] = (np.asarray(values).astype(dtype), np.dtype(dtype))
        return out

    # ------------------------------------------------------------------------------------ fit
    def _columns(self, data: ImageSet, targets: dict, epoch: int) -> tuple[dict, dict]:
        """Epoch `epoch`'s examples in order: a permutation seeded by (seed, epoch), so a
        resumed run sees exactly the batches an uninterrupted run would. Returns (in-memory
        columns in that order, disk-backed columns (`datasets.streaming.on_disk`: a streamed
        split's images, sharded masks) to gather per batch by the `row` column)."""
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(data))
        wanted = {"image": (data.images, data.images.dtype), "label": (data.labels, np.int32),
                  **{k: (v, np.float32) for k, v in targets.items()}}
        if data.label_sets is not None:
            wanted["label_set"] = (data.label_sets, np.float32)
        wanted.update(self._extra_inputs(data))
        for key, (field, dtype) in self.step.batch_fields.items():
            values = getattr(data, field)
            if values is None:
                raise ValueError(f"{type(self.step).__name__} trains on per-image {field!r}, "
                                 "which these data do not carry")
            wanted[key] = (np.asarray(values), np.dtype(dtype))
        columns, disk = {}, {}
        for key, (values, dtype) in wanted.items():
            if on_disk(values):
                disk[key] = (values, np.dtype(dtype))
            else:
                columns[key] = np.asarray(values)[order].astype(dtype)
        if disk:
            columns["row"] = order.astype(np.int64)
        return columns, disk

    @staticmethod
    def _batched(columns: dict, disk: dict, batch_size: int, drop_remainder: bool,
                 ds: tf.data.Dataset | None = None) -> tf.data.Dataset:
        """Batches of the in-memory columns, the disk-backed ones gathered into each batch (a
        parallel map: only a batch of rows is ever read into memory)."""
        ds = (ds or tf.data.Dataset.from_tensor_slices(columns)).batch(
            batch_size, drop_remainder=drop_remainder)
        if disk:
            keys = sorted(disk)

            def read(rows):
                return tuple(gather(disk[k][0], rows).astype(disk[k][1]) for k in keys)

            def add_rows(batch):
                rows = batch.pop("row")
                values = tf.numpy_function(read, [rows], [tf.as_dtype(disk[k][1]) for k in keys])
                for k, v in zip(keys, values):
                    batch[k] = tf.ensure_shape(v, (None,) + tuple(disk[k][0].shape[1:]))
                return batch

            ds = ds.map(add_rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def _dataset(self, data: ImageSet, targets: dict, epoch: int) -> tf.data.Dataset:
        columns, disk = self._columns(data, targets, epoch)
        return self._batched(columns, disk, self.cfg.batch_size,
                             len(data) >= self.cfg.batch_size)

    def distributed_batches(self, data: ImageSet, targets: dict, epoch: int):
        """Under a strategy: the same global batches, each split over the replicas
        (`distribute_datasets_from_function`: per worker, a shard of the epoch's order batched
        at the per-replica size; one worker's replicas take consecutive per-replica batches, so
        with one worker a global batch holds exactly the examples a single device's would)."""
        columns, disk = self._columns(data, targets, epoch)
        global_batch = self.cfg.batch_size
        if len(data) < global_batch:
            raise ValueError(f"distributed training needs at least one global batch "
                             f"({global_batch}) of training data, got {len(data)}")

        def per_worker(ctx: tf.distribute.InputContext):
            ds = tf.data.Dataset.from_tensor_slices(columns)
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
            return self._batched(columns, disk, ctx.get_per_replica_batch_size(global_batch),
                                 True, ds)

        return self.strategy.distribute_datasets_from_function(per_worker)

    def _validate(self, val: ImageSet) -> dict:
        """val_loss/accuracy/auc; on data with counterfactual twins also val_twin_* (the same
        images without the marker: a selection criterion the shortcut does not reward). A step
        with its own `validation_scores(logits, val)` (a segmenter) reports those instead."""
        own = getattr(self.step, "validation_scores", None)
        if own is not None:
            return own(self.predict_logits(val.images, data=val), val)
        out = self._scores(val.images, val.labels, "val", val.label_sets, val)
        if val.twins is not None:
            twin = self._scores(val.twins, val.labels, "val_twin", val.label_sets, val)
            out.update({k: v for k, v in twin.items() if k != "val_twin_loss"})
        return out

    def _scores(self, images: np.ndarray, labels: np.ndarray, prefix: str,
                label_sets: np.ndarray | None = None, data: ImageSet | None = None) -> dict:
        from sklearn.metrics import roc_auc_score
        logits = self.predict_logits(images, data=data)
        multi_label = self.step.cam_model.multi_label
        sets = label_sets if multi_label else None
        ce = float(np.mean(classification_loss(tf.constant(logits), tf.constant(labels),
                                               multi_label, sets)))
        probs = probabilities_from_logits(logits, multi_label)
        if sets is not None:  # per (image, class) decisions; macro AUC over defined classes
            sets = np.asarray(sets)
            defined = [j for j in range(sets.shape[1]) if len(set(sets[:, j])) == 2]
            auc = float(np.mean([roc_auc_score(sets[:, j], probs[:, j]) for j in defined])) \
                if defined else math.nan
            return {f"{prefix}_loss": ce, f"{prefix}_auc": auc,
                    f"{prefix}_accuracy": float(np.mean((probs > 0.5) == sets))}
        if probs.ndim == 1:
            pred = (probs > 0.5).astype(int)
            auc = roc_auc_score(labels, probs) if len(set(labels)) == 2 else math.nan
        else:  # macro one-vs-rest on each class's own score column
            pred = probs.argmax(1)
            onehot = labels[:, None] == np.arange(probs.shape[1])
            auc = roc_auc_score(onehot, probs, average="macro") \
                if len(set(labels)) == probs.shape[1] else math.nan
        return {f"{prefix}_loss": ce, f"{prefix}_accuracy": float(np.mean(pred == labels)),
                f"{prefix}_auc": float(auc)}

    def _patience_spent(self, history: list[dict]) -> bool:
        """Early stopping: `early_stopping_patience` epochs since the best one. The last record
        is marked `stopped_early` in metrics.jsonl, so a rerun knows the run is finished."""
        patience = self.cfg.early_stopping_patience
        if not patience or history[-1]["epoch"] >= self.cfg.epochs:
            return False
        best = max((h["epoch"] for h in history if h.get("best")), default=0)
        if history[-1]["epoch"] - best < patience:
            return False
        history[-1]["stopped_early"] = True
        log_path = self.run_dir / "metrics.jsonl"
        log_path.write_text("".join(json.dumps(h) + "\n" for h in history))
        if self.verbose:
            print(f"early stopping after epoch {history[-1]['epoch']}: no better "
                  f"{self.cfg.monitor} for {patience} epochs (best: epoch {best})")
        return True

    def _reseed(self, epoch: int) -> None:
        """Dropout draws depend only on (seed, epoch), so a resumed run repeats them exactly
        (Keras keeps each layer's RNG state in a variable the checkpoint does not hold)."""
        for i, layer in enumerate(self.model.layers):
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                generator.state.assign(np.array([self.cfg.seed * 100_003 + epoch * 101 + i, 0],
                                                generator.state.dtype))

    def _save_best(self):
        final = self.run_dir / "best.keras"
        tmp = self.run_dir / "best.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, final)  # atomic: a crash never leaves a half-written best model

    def _check_targets(self, train: ImageSet, targets: dict) -> None:
        for key in self.step.targets:
            if targets.get(key) is None:
                raise ValueError(f"{type(self.step).__name__} needs per-image {key!r} targets "
                                 "(guided training needs relevance masks)")
            if np.shape(targets[key]) != train.images.shape[:3]:
                raise ValueError(f"{key} targets {np.shape(targets[key])} do not match images "
                                 f"{train.images.shape[:3]}")

    def _read_history(self, log_path: Path, upto: int) -> list[dict]:
        """The logged epochs the checkpoint (or the finished run) has; later lines are dropped."""
        if not log_path.exists():
            return []
        history = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        history = [h for h in history if h["epoch"] <= upto]
        log_path.write_text("".join(json.dumps(h) + "\n" for h in history))
        return history

    def _write_snapshot(self, epoch: int, history: list[dict]) -> None:
        """The state after `epoch` (checkpoint, best model, log) for a run that shares it."""
        snap = self.run_dir / "snapshots" / f"epoch-{epoch}"
        shutil.rmtree(snap, ignore_errors=True)
        snap.mkdir(parents=True)
        self.shared_checkpoint.write(str(snap / "ckpt"))
        shutil.copy2(self.run_dir / "best.keras", snap / "best.keras")
        (snap / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))

    def _start_from(self, snapshot: Path, log_path: Path) -> None:
        """Begin where another run's snapshot stands: its weights, optimizer state, epoch, best
        score, best model and logged epochs (marked `shared_from`)."""
        self.shared_checkpoint.read(str(snapshot / "ckpt")).assert_existing_objects_matched()
        shutil.copy2(snapshot / "best.keras", self.run_dir / "best.keras")
        donor = snapshot.parent.parent.name
        lines = [json.loads(line) for line in (snapshot / "metrics.jsonl").read_text().splitlines()
                 if line]
        log_path.write_text("".join(json.dumps({**h, "shared_from": donor}) + "\n"
                                    for h in lines))
        if self.verbose:
            print(f"starting {self.run_dir} from {donor}'s state after epoch "
                  f"{int(self.epoch.numpy())} (identical training so far)")

    def fit(self, train: ImageSet, val: ImageSet, targets: dict | None = None, *,
            snapshot_epochs=(), start_from: str | os.PathLike | None = None) -> list[dict]:
        """Train (or resume) to `TrainConfig.epochs`; returns the per-epoch records.

        snapshot_epochs: epochs after which to leave a snapshot (run_dir/snapshots/epoch-k).
        start_from: another run's snapshot to begin from when this run has not started (the
        caller vouches that its training up to that epoch is identical)."""
        if self.cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        targets = {k: v for k, v in (targets or {}).items() if k in self.step.targets}
        self._check_targets(train, targets)
        log_path = self.run_dir / "metrics.jsonl"
        restored = self.manager.latest_checkpoint
        fresh = not restored and not (self.run_dir / "best.keras").exists()
        if fresh and start_from is not None and Path(start_from, "ckpt.index").exists():
            self._start_from(Path(start_from), log_path)
        elif restored:
            self.checkpoint.restore(restored).assert_existing_objects_matched()
            if self.verbose:
                print(f"resuming {self.run_dir} after epoch {int(self.epoch.numpy())}")
        elif (self.run_dir / "best.keras").exists() and log_path.exists():
            done = self._read_history(log_path, self.cfg.epochs)
            if done and (done[-1]["epoch"] >= self.cfg.epochs or done[-1].get("stopped_early")):
                if self.verbose:
                    print(f"resuming {self.run_dir}: already trained for {self.cfg.epochs} epochs")
                return done
            raise ValueError(f"{self.run_dir} logged {done[-1]['epoch'] if done else 0} epochs "
                             "but holds no checkpoint to continue from (deleted when the run "
                             f"finished), so it cannot train to {self.cfg.epochs}: use a new "
                             "--name, or keep_checkpoints next time")
        if self.multiworker:
            self._agree_on_epoch()
        history = self._read_history(log_path, int(self.epoch.numpy()))
        if history and history[-1].get("stopped_early"):  # kept checkpoints: still finished
            return history
        steps = self.cfg.steps_per_epoch
        schedule = get_schedule(self.cfg.lr_schedule)
        self.step.prepare(train)
        for epoch in range(int(self.epoch.numpy()) + 1, self.cfg.epochs + 1):
            self._reseed(epoch)
            logged = self.step.on_epoch(epoch)
            if self.step.trace_key() != self._traced_for:
                self._trace()
            if schedule.rate is not None and not schedule.per_step:
                logged["learning_rate"] = schedule.rate(self.cfg, epoch, 0, 1)
                self.optimizer.learning_rate.assign(logged["learning_rate"])
            if self.distributed:
                ds = self.distributed_batches(train, targets, epoch)
                available = len(train) // self.cfg.batch_size
            else:
                ds = self._dataset(train, targets, epoch)
                available = len(ds)
            n_batches = available if steps is None else min(steps, available)
            per_step = schedule.rate is not None and schedule.per_step
            bar = keras.utils.Progbar(n_batches, verbose=self.verbose,
                                      stateful_metrics=list(logged))
            if self.verbose:
                print(f"epoch {epoch}/{self.cfg.epochs}")
            sums: dict[str, float] = {}
            start = time.perf_counter()
            with self._peer_guard(epoch):
                batches = iter(ds)
                for i in range(n_batches):
                    batch = next(batches)
                    if per_step:  # derived from the checkpointed epoch: resumes agree
                        self.optimizer.learning_rate.assign(
                            schedule.rate(self.cfg, epoch, i, n_batches))
                    out = {k: float(v) for k, v in self.train_step(batch).items()}
                    for k, v in out.items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.update(i + 1, list(out.items()) + list(logged.items()))
            record = {"epoch": epoch, **logged, "seconds": time.perf_counter() - start}
            record.update({k: v / n_batches for k, v in sums.items()})
            record.update(self._validate(val))
            if not all(math.isfinite(v) for k, v in record.items() if not k.endswith("_auc")):
                raise FloatingPointError(f"non-finite training metrics at epoch {epoch}: {record}")
            if self.cfg.monitor == "last":
                score = float(epoch)
            elif self.cfg.monitor.endswith("_loss"):  # minimised
                score = -record[self.cfg.monitor]
            else:
                if self.cfg.monitor not in record:
                    raise ValueError(f"train.monitor {self.cfg.monitor!r} is not a validation "
                                     f"figure of this data; choose last or one of "
                                     f"{', '.join(k for k in record if k.startswith('val_'))}")
                score = record[self.cfg.monitor]
                if not math.isfinite(score):
                    score = -record["val_loss"]
            if score > float(self.best.numpy()) or not (self.run_dir / "best.keras").exists():
                self.best.assign(score)
                self._save_best()
                record["best"] = True
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.epoch.assign(epoch)
            self.manager.save(checkpoint_number=epoch)
            history.append(record)
            if epoch in snapshot_epochs:
                self._write_snapshot(epoch, history)
            if self.verbose:
                print("  " + "  ".join(f"{k}={v:.4g}" for k, v in record.items()
                                       if isinstance(v, float)))
            if self._patience_spent(history):
                break
        if not self.cfg.keep_checkpoints:
            shutil.rmtree(self.run_dir / "checkpoints", ignore_errors=True)
        return history
