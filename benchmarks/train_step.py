"""Train-step throughput: baseline vs exact (second-order) vs first-order GFSR, side by side in one
process (ratios are what count on a noisy machine). The first traced call is reported separately
and excluded, like the warm-up steps.

    python benchmarks/train_step.py --size 64 --batch 32 --steps 5
    python benchmarks/train_step.py --size 64 --batch 32 --deterministic   # op determinism cost
    python benchmarks/train_step.py --size 128 --batch 32 --head softmax   # 3-class softmax head
    python benchmarks/train_step.py --size 128 --batch 32 --layer conv2_block3_out  # main job's layer
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gfsr_tf.config import BenchmarkConfig, TrainConfig  # noqa: E402
from gfsr_tf.datasets.synthetic import make_split  # noqa: E402
from gfsr_tf.guidance.masks import relevance_masks  # noqa: E402
from gfsr_tf.methods.gfsr import GfsrStep, RelevanceConfig  # noqa: E402
from gfsr_tf.models import build_classifier  # noqa: E402
from gfsr_tf.training import Trainer  # noqa: E402

VARIANTS = {
    "baseline": RelevanceConfig(weight=0.0),
    "exact_gfsr": RelevanceConfig(weight=1.0, second_order=True),
    "first_order_gfsr": RelevanceConfig(weight=1.0, second_order=False),
    "fused_first_order_gfsr": RelevanceConfig(weight=1.0, second_order=False, fused=True),
    "input_grad_ext": RelevanceConfig(weight=1.0, input_gradient_weight=1.0),
}
# A 3-class softmax head: the fused step's two CAM choices (methods/gfsr/fused.py).
SOFTMAX_VARIANTS = {
    "baseline": VARIANTS["baseline"],
    "exact_gfsr": VARIANTS["exact_gfsr"],
    "first_order_gfsr": VARIANTS["first_order_gfsr"],
    "fused_logit_cam_gfsr": RelevanceConfig(weight=1.0, second_order=False, fused=True,
                                            fused_cam="logit"),
    "fused_log_probability_cam_gfsr": RelevanceConfig(weight=1.0, second_order=False,
                                                      fused=True, fused_cam="log_probability"),
}


def time_step(step_fn, batch, batch_size: int, warmup: int, steps: int, name: str) -> dict:
    """First (traced) call, then the median of `steps` timed calls after `warmup` untimed ones;
    printed and returned."""
    t0 = time.perf_counter()
    step_fn(batch)["loss"].numpy()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step_fn(batch)["loss"].numpy()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step_fn(batch)["loss"].numpy()
        times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    print(f"{name:32s} first call {first:6.1f} s   step {step:6.3f} s   "
          f"{batch_size / step:6.1f} img/s", flush=True)
    return {"first_call_s": first, "step_s": step, "images_per_s": batch_size / step}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the traced call")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--memory", action="store_true", help="also peak RSS per variant, each in a "
                   "fresh process (a high-water mark only grows within one)")
    p.add_argument("--layer", default="conv3_block4_out", help="Grad-CAM target layer (the "
                   "paper's conv3_block4_out; the main job's default is conv2_block3_out)")
    p.add_argument("--head", choices=("binary", "softmax"), default="binary",
                   help="binary: single sigmoid logit (default); softmax: 3 classes")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # one variant, for --memory's processes
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = make_split(BenchmarkConfig(image_size=args.size), "train", args.batch)
    masks = relevance_masks(data)
    classes = 3 if args.head == "softmax" else 2
    labels = data.labels if classes == 2 else np.arange(len(data.labels)) % classes
    x, y, m = tf.constant(data.images), tf.constant(labels.astype(np.int32)), tf.constant(masks)
    batch = {"image": x, "label": y, "mask": m}
    rows = {}
    table = SOFTMAX_VARIANTS if args.head == "softmax" else VARIANTS
    variants = {args.variant: table[args.variant]} if args.variant else table
    for name, relevance in variants.items():
        model = build_classifier(classes, (args.size, args.size, 3), weights=None, seed=0)
        step = functools.partial(GfsrStep, config=relevance, target_layer=args.layer)
        trainer = Trainer(model, f"/tmp/gfsr_bench_{name}", step, verbose=0,
                          train=TrainConfig(batch_size=args.batch))
        trainer.step.on.assign(1.0)
        rows[name] = time_step(trainer.train_step, batch, args.batch, args.warmup, args.steps,
                               name)
        step = rows[name]["step_s"]
        if name == "baseline" and not args.variant and args.head == "binary":
            rows[name]["input_pipeline_vs_in_memory_step_ratio"] = input_pipeline_ratio(
                trainer, args.size, args.batch, step)
    if args.variant:
        # VmHWM (this address space's high-water mark), not ru_maxrss: the latter is inherited
        # across fork+exec from the (large) parent that launched this process
        hwm = next(line for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        print(f"peak_rss_mib={int(hwm.split()[1]) / 1024:.1f}")
        return rows
    base = rows["baseline"]["step_s"]
    prefix = "softmax_" if args.head == "softmax" else ""
    ratios = {f"{prefix}{k}_vs_baseline_step_ratio": v["step_s"] / base
              for k, v in rows.items() if k != "baseline"}
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = (f"train_step_{args.size}px_b{args.batch}{'_det' if args.deterministic else ''}"
           f"{'_softmax' if args.head == 'softmax' else ''}"
           f"{'' if args.layer == 'conv3_block4_out' else '_' + args.layer}")
    if args.memory:
        for name in table:
            rows[name]["peak_rss_mib"] = peak_rss(name, args)
        ratios.update({f"{prefix}{k}_vs_baseline_peak_memory_ratio":
                       rows[k]["peak_rss_mib"] / rows["baseline"]["peak_rss_mib"]
                       for k in table if k != "baseline"})
        for k in table:
            print(f"{k:24s} peak RSS {rows[k]['peak_rss_mib']:8.0f} MiB")
    result = {"config": vars(args), "variants": rows, **ratios}
    if args.head == "binary":
        departure = fused_cam_departure(args.size, x, y, m, args.layer)
        print(f"fused vs per-image first-order CAM (BatchNorm in training mode): mean |diff| "
              f"{departure['mean_abs_cam_difference']:.4f}, mean correlation "
              f"{departure['mean_cam_correlation']:.4f}")
        result["fused_cam"] = departure
        ratios["input_pipeline_vs_in_memory_step_ratio"] = \
            rows["baseline"]["input_pipeline_vs_in_memory_step_ratio"]
        print(f"in-memory step / step fed by the trainer's tf.data pipeline: "
              f"{ratios['input_pipeline_vs_in_memory_step_ratio']:.3f}")
        result.update(ratios)
    (out / f"{tag}.json").write_text(json.dumps(result, indent=2))
    return result


def input_pipeline_ratio(trainer, size, batch, in_memory_step) -> float:
    """The baseline step fed by the trainer's own tf.data pipeline (uint8 batches from memory,
    prefetched; preprocessing runs inside the step) vs. the same step on constant tensors:
    in-memory step time / pipeline step time (1.0 = the input never makes the step wait)."""
    data = make_split(BenchmarkConfig(image_size=size), "train", 6 * batch)
    dataset = trainer._dataset(data, {}, epoch=0)
    times = []
    iterator = iter(dataset)
    next_batch = next(iterator)
    for batch_tensors in iterator:
        t0 = time.perf_counter()
        trainer.train_step(next_batch)["loss"].numpy()
        times.append(time.perf_counter() - t0)
        next_batch = batch_tensors
    return in_memory_step / float(np.median(times))


def peak_rss(name, args) -> float:
    """Peak resident memory (MiB) of a fresh process that builds the model and runs the step."""
    import subprocess
    cmd = [sys.executable, __file__, "--variant", name, "--size", str(args.size), "--batch",
           str(args.batch), "--steps", "2", "--warmup", "0", "--head", args.head,
           "--layer", args.layer]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.split("peak_rss_mib=")[1].split()[0])


def fused_cam_departure(size, x, y, m, layer="conv3_block4_out") -> dict:
    """How far the fused CAM (from the batch-mean CE gradient) departs from the per-image
    first-order CAM when BatchNorm runs in training mode and couples the images."""
    from gfsr_tf.models import CamModel
    from gfsr_tf.preprocessing import preprocess
    from gfsr_tf.saliency import gradcam
    from gfsr_tf.methods.gfsr.fused import fused_gradients, split_at
    model = build_classifier(2, (size, size, 3), weights=None, seed=0)
    xp = preprocess(x)
    reference = gradcam(CamModel(model, layer), xp, y, training=True, second_order=False)[0]
    fused = fused_gradients(*split_at(model, layer), model.trainable_variables, xp, y, m, 1.0,
                            RelevanceConfig(), training=True)[4]
    a, b = reference.numpy().reshape(len(x), -1), fused.numpy().reshape(len(x), -1)
    corr = [np.corrcoef(u, v)[0, 1] for u, v in zip(a, b) if u.std() > 0 and v.std() > 0]
    return {"mean_abs_cam_difference": float(np.abs(a - b).mean()),
            "mean_cam_correlation": float(np.mean(corr)) if corr else float("nan")}


if __name__ == "__main__":
    main()
