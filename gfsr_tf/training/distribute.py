"""tf.distribute strategies for the generic training loop - TensorFlow's own engine, once for every
method:

  none         the default strategy (one device)
  mirrored     tf.distribute.MirroredStrategy over every visible GPU; with `cpu_replicas=N` over N
               logical CPU devices (`tf.config.set_logical_device_configuration`), so the path
               runs and is tested on machines without GPUs
  multiworker  tf.distribute.MultiWorkerMirroredStrategy from the TF_CONFIG environment variable;
               the chief (worker 0) writes checkpoints, best.keras, metrics and the report, the
               others write to OUT/workertemp_<i> (the documented Keras/TF pattern), removed when
               the run finishes; a worker that never joins fails the others after `timeout_s`
               with a one-line error (exit status 137); a worker dying mid-run fails the others
               with a one-line error (the trainer's `PeerWorkerLost`), and restarting every
               worker resumes from each one's checkpoint (checked to agree)

Under a strategy the model, the optimizer and the checkpoint are created in `strategy.scope()`,
each method's step runs per replica in `strategy.run` (the Grad-CAM inner tape and the fused step
are per replica: per-image maps need no communication), its gradients are divided by the replica
count (`TrainStep.apply`) and all-reduced by Keras once per step, and the batches come from
`strategy.distribute_datasets_from_function` (sharded per worker). BatchNorm is per replica
unless `sync_batchnorm` (Keras' BatchNormalization(synchronized=True)).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import tensorflow as tf

from ..config import STRATEGIES


def split_cpu(replicas: int) -> list:
    """Split the (first) physical CPU into `replicas` logical devices; must run before TensorFlow
    initialises its devices (start of the process)."""
    cores = os.cpu_count() or 1
    if not 1 <= replicas <= cores:
        raise ValueError(f"cpu_replicas must be between 1 and the {cores} CPU cores here, got "
                         f"{replicas}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * replicas
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == replicas:
        return tf.config.list_logical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise RuntimeError(f"cpu_replicas={replicas}: TensorFlow has already initialised its "
                           "devices in this process; split the CPU at the start of a fresh "
                           "process (the CLI and the experiments do)") from None
    return tf.config.list_logical_devices("CPU")


def read_tf_config() -> dict:
    """TF_CONFIG, validated: {"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker",
    "index": i}}."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError("distribute=multiworker needs the TF_CONFIG environment variable "
                         '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                         '"task": {"type": "worker", "index": 0}})')
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"TF_CONFIG is malformed ({type(exc).__name__}: {exc}); it needs "
                         "cluster.worker (a list of host:port) and task.type / task.index") \
            from None
    if not isinstance(workers, list) or not workers or not all(
            isinstance(w, str) and ":" in w for w in workers):
        raise ValueError(f"TF_CONFIG cluster.worker must be a list of host:port, got {workers!r}")
    if task.get("type") not in ("worker", "chief") or not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG task must be a worker with 0 <= index < {len(workers)}, "
                         f"got {task!r}")
    return config


def make_strategy(name: str = "none", *, cpu_replicas: int | None = None,
                  timeout_s: float = 300.0) -> tf.distribute.Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown distribute strategy {name!r}; choose one of "
                         f"{', '.join(STRATEGIES)}")
    if name == "none":
        if cpu_replicas and cpu_replicas > 1:
            raise ValueError("cpu_replicas needs distribute=mirrored")
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas:
            devices = [d.name for d in split_cpu(cpu_replicas)]
            return tf.distribute.MirroredStrategy(
                devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy()
    workers = read_tf_config()["cluster"]["worker"]
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    # TensorFlow blocks in the constructor until every worker has joined, holding the GIL and
    # ignoring SIGTERM (measured: still waiting after 10 minutes), so no Python-level timeout
    # can interrupt it. A forked watchdog does: unless the constructor returns within
    # `timeout_s`, it prints one line and kills this process (exit status 137), so a missing
    # worker fails the others instead of hanging them.
    message = (f"error: multiworker: not every worker of {workers} joined within "
               f"{timeout_s:.0f} s (train.worker_timeout_s); start them all, or check "
               "TF_CONFIG and the ports")
    done, pid = _watchdog(timeout_s, message)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    finally:
        os.write(done, b"1")
        os.close(done)
        os.waitpid(pid, 0)


def _watchdog(timeout_s: float, message: str) -> tuple[int, int]:
    """Fork a process that kills this one with `message` on stderr unless a byte arrives on the
    returned pipe within `timeout_s`; returns (write end, watchdog pid)."""
    import select
    import signal
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the watchdog: OS calls only
        os.close(write)
        if not select.select([read], [], [], timeout_s)[0]:
            os.write(2, (message + "\n").encode())
            os.kill(os.getppid(), signal.SIGKILL)
        os._exit(0)
    os.close(read)
    return write, pid


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Worker 0 of a multi-worker run (and every single-worker run)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task = read_tf_config()["task"]
    return task.get("type") == "chief" or int(task["index"]) == 0


def write_dir(path, strategy: tf.distribute.Strategy | None = None):
    """Where this process writes: `path` on the chief; on worker i, `path`/workertemp_i (the
    documented Keras/TF pattern): identical copies nobody reads, except the worker's own
    checkpoint when every worker is restarted to resume. `finish_worker` removes it."""
    if is_chief(strategy):
        return path
    return str(Path(path) / f"workertemp_{int(read_tf_config()['task']['index'])}")


def finish_worker(path) -> None:
    """After a finished run: a non-chief worker's folder goes (nothing in it is read)."""
    if Path(path).name.startswith("workertemp_"):
        shutil.rmtree(path, ignore_errors=True)


def describe(strategy: tf.distribute.Strategy | None = None, name: str = "none") -> dict:
    """report.json's `training.distribute`."""
    strategy = strategy or tf.distribute.get_strategy()
    workers = 1
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        workers = len(read_tf_config()["cluster"]["worker"])
    return {"strategy": name, "replicas": int(strategy.num_replicas_in_sync),
            "workers": workers}


def recorded(train) -> dict:
    """A TrainConfig's strategy as reports record it (`training.distribute`)."""
    return describe(strategy_for(train), train.distribute)


def synchronise_batchnorm(model) -> int:
    """BatchNorm statistics over the global batch (SyncBatchNormalization); returns how many
    layers were switched."""
    import keras
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


_STRATEGIES: dict = {}


def strategy_for(train) -> tf.distribute.Strategy:
    """The strategy a TrainConfig asks for, created once per process (a multi-worker strategy
    must be, and early: the CLI and the experiments call this before loading data)."""
    key = (train.distribute, train.cpu_replicas)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make_strategy(train.distribute, cpu_replicas=train.cpu_replicas,
                                         timeout_s=train.worker_timeout_s)
    return _STRATEGIES[key]
