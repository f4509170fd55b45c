"""tf.distribute in the generic loop: one device vs two logical CPU replicas give the same first
step (loss and all-reduced gradients) and the same 3-epoch loss curve; two local worker processes
complete a smoke study with the chief writing the run; the strategy is recorded in report.json;
bad strategy input is one clear error. Replicated runs happen in fresh processes (logical devices
must be configured before TensorFlow starts)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import experiment

from gfsr_tf.config import TrainConfig
from gfsr_tf.training.distribute import read_tf_config, split_cpu

ROOT = Path(__file__).resolve().parents[1]


def _probe(tmp_path, *args) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "distribute_probe.py"), "--out",
                        str(tmp_path), *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # ~16 s; moved 2026-12-06 to keep the default suite within 10 minutes
def test_two_cpu_replicas_equal_one_device_baseline(tmp_path):
    # the replicated run streams its images from a memmap and its masks from a row store
    out = _probe(tmp_path, "--sync-batchnorm", "--fit-epochs", "3", "--on-disk")
    assert out["replicas"] == 2
    assert out["loss_replicated"] == pytest.approx(out["loss_one"], rel=1e-6)
    # Adam's first update with eps = 1e3 is linear in the gradient: equal updates, equal grads
    assert out["max_update"] > 0
    assert out["max_update_difference"] <= 1e-4 * out["max_update"]
    one, replicated = out["curves"]["one"], out["curves"]["replicated"]
    assert len(one) == 3 and one[-1] < one[0]
    assert replicated == pytest.approx(one, rel=1e-4)       # the stated tolerance


@pytest.mark.slow  # ~10 s; the baseline's equivalence above stays in the default suite
def test_two_cpu_replicas_equal_one_device_gfsr(tmp_path):
    # Grad-CAM on the running statistics (cam_mode inference): each image's map depends on that
    # image alone, so the per-replica inner tape is exact (see docs/scaling.md)
    out = _probe(tmp_path, "--method", "gfsr", "--sync-batchnorm", "--on-disk", "--options",
                 json.dumps({"warmup_epochs": 0, "cam_mode": "inference"}))
    assert out["loss_replicated"] == pytest.approx(out["loss_one"], rel=1e-6)
    assert out["max_update_difference"] <= 1e-4 * out["max_update"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(tmp_path, epochs: int) -> list:
    """Two local workers training the small-CNN smoke study (worker i writes under out<i>)."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gfsr_tf.cli", "train", "--smoke", "--distribute",
             "multiworker", "--set", 'model.backbone="small_cnn"', "--image-size", "32",
             "--epochs", str(epochs), "--set", "train.worker_timeout_s=30", "--out",
             str(tmp_path / f"out{i}"), "--name", "mw"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


@pytest.mark.slow  # two worker processes training a smoke study: ~15 s with the cores free
def test_two_local_workers_complete_a_smoke_study_and_the_chief_writes_it(tmp_path):
    procs = _workers(tmp_path, 2)
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    report = json.loads((tmp_path / "out0" / "mw" / "report.json").read_text())
    assert report["baseline"]["training"]["distribute"] == {"strategy": "multiworker",
                                                            "replicas": 2, "workers": 2}
    # worker 1 wrote its copy to out1/workertemp_1, removed when the run finished
    assert not list((tmp_path / "out1").rglob("*"))


@pytest.mark.slow  # two workers, one killed mid-run, then both restarted: ~45 s
def test_a_worker_dying_mid_run_fails_the_other_in_one_line_and_a_restart_resumes(tmp_path):
    import time
    procs = _workers(tmp_path, 12)
    for line in procs[0].stdout:                      # worker 0 has checkpointed epoch 2
        if "epoch 3/" in line:
            break
    procs[1].kill()
    start = time.perf_counter()
    _, err = procs[0].communicate(timeout=300)
    assert procs[0].returncode == 1 and time.perf_counter() - start < 120   # not a hang
    assert err.strip().splitlines()[-1].startswith(
        "error: multiworker: a peer worker stopped responding during epoch ")
    assert "restart every worker with the same command to resume" in err
    # restarted with the same command: both resume, from the newest epoch both hold
    procs = _workers(tmp_path, 12)
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "resuming" in outs[0][0] and "resuming" in outs[1][0]
    report = json.loads((tmp_path / "out0" / "mw" / "report.json").read_text())
    for variant in ("baseline", "gfsr"):
        assert [h["epoch"] for h in report[variant]["training"]["history"]] == \
            list(range(1, 13))


def test_a_worker_whose_peer_never_joins_fails_with_one_line_not_a_hang(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                  "task": {"type": "worker", "index": 0}})}
    r = subprocess.run([sys.executable, "-m", "gfsr_tf.cli", "train", "--smoke", "--distribute",
                        "multiworker", "--set", "train.worker_timeout_s=2", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=120)
    assert r.returncode == -9                      # killed by the watchdog, after its message
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"error: multiworker: not every worker of {workers} joined within 2 s")


@pytest.mark.slow  # a whole smoke study under 2 replicas (~18 s); the step-level 2-replica
# equivalence (test_two_cpu_replicas_equal_one_device_baseline) stays in the default suite
def test_mirrored_smoke_study_records_the_strategy(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gfsr_tf.cli", "train", "--smoke",
                        "--distribute", "mirrored", "--cpu-replicas", "2", "--set",
                        'model.backbone="small_cnn"', "--image-size", "32", "--epochs", "1",
                        "--out", str(tmp_path), "--name", "m", "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    for variant in ("baseline", "gfsr"):
        assert report[variant]["training"]["distribute"] == {"strategy": "mirrored",
                                                             "replicas": 2, "workers": 1}


def test_bad_strategy_input_is_one_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="train.distribute must be one of"):
        TrainConfig(distribute="horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is malformed"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]},
                                                "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ValueError, match="0 <= index < 1"):
        read_tf_config()
    with pytest.raises(ValueError, match="CPU cores here"):
        split_cpu((os.cpu_count() or 1) + 1)


def test_cli_bad_strategy_is_one_line_exit_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    r = subprocess.run([sys.executable, "-m", "gfsr_tf.cli", "train", "--smoke", "--distribute",
                        "multiworker", "--out", str(tmp_path)], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: distribute=multiworker needs "
                                                        "the TF_CONFIG")


@pytest.mark.slow  # two small smoke studies under 2 CPU replicas: ~30 s
def test_a_mirrored_run_resumes_from_its_checkpoint(tmp_path):
    def train(epochs):
        return subprocess.run([sys.executable, "-m", "gfsr_tf.cli", "train", "--smoke",
                               "--distribute", "mirrored", "--cpu-replicas", "2", "--set",
                               'model.backbone="small_cnn"', "--image-size", "32", "--epochs",
                               str(epochs), "--keep-checkpoints", "--out", str(tmp_path),
                               "--name", "r"], capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
    assert train(1).returncode == 0
    again = train(2)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming" in again.stdout and "after epoch 1" in again.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [h["epoch"] for h in report["baseline"]["training"]["history"]] == [1, 2]


ROW_EXPERIMENTS = {  # each experiment's smallest run: (arguments, the recorded strategies)
    "gaze_unet": (["--smoke", "--rows", "unet", "--seeds", "0"],
                  lambda out: [json.loads((out / "gaze_unet_smoke" / "unet@seed0_smoke" /
                                           "result.json").read_text())["distribute"]]),
    "ablation_shortcut": (["--smoke", "--rows", "baseline"],
                          lambda out: [json.loads((out / "ablation_smoke" / "baseline" /
                                                   "result.json").read_text())["distribute"]]),
    # the predictor row (48 prompted samples; the smoke's per-setting classifiers have 4
    # training images, less than one global batch, which a replicated run refuses)
    "gaze_intensity": (["--smoke", "--rows", "ours"],
                       lambda out: [json.loads((out / "gaze_intensity_smoke" / "report.json")
                                               .read_text())["rows"]["ours"]["distribute"]]),
    "segx": (["--smoke", "--set", 'model.backbone="small_cnn"'],
             lambda out: [m["training"]["distribute"] for m in json.loads(
                 (out / "segx_smoke" / "report.json").read_text())["segx"]["models"].values()]),
}


@pytest.mark.slow  # one smoke row of each experiment under 2 CPU replicas: ~1-2 min each
@pytest.mark.parametrize("experiment", sorted(ROW_EXPERIMENTS))
def test_row_experiments_train_under_a_strategy(experiment, tmp_path):
    args, recorded = ROW_EXPERIMENTS[experiment]
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{experiment}.py"), *args,
                        "--distribute", "mirrored", "--cpu-replicas", "2", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    found = recorded(tmp_path)
    assert found and all(d == {"strategy": "mirrored", "replicas": 2, "workers": 1}
                         for d in found)


def test_row_experiment_with_too_many_cpu_replicas_is_one_line_exit_1(tmp_path, capsys):
    # in this process: the core count is checked before TensorFlow's devices are touched
    gaze_unet = experiment("gaze_unet")
    assert gaze_unet.main(["--smoke", "--distribute", "mirrored", "--cpu-replicas", "999",
                           "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: cpu_replicas must be between 1")


def test_sparse_embedding_gradients_are_averaged_over_replicas_too():
    # an Embedding's gradient is IndexedSlices (the prompted gaze-intensity model has one)
    import numpy as np
    import tensorflow as tf
    from gfsr_tf.training.step import _divided
    sparse = tf.IndexedSlices(tf.constant([[2.0, 4.0], [6.0, 8.0]]), tf.constant([0, 2]),
                              tf.constant([3, 2]))
    half = _divided(sparse, 2)
    assert isinstance(half, tf.IndexedSlices)
    np.testing.assert_array_equal(tf.convert_to_tensor(half).numpy(),
                                  [[1, 2], [0, 0], [3, 4]])
    np.testing.assert_array_equal(_divided(tf.constant([4.0, 6.0]), 2).numpy(), [2, 3])
