"""Sharded relevance-mask generation (`guidance.sharded`): images/s with 1 vs N SLIC processes, and
peak memory against the number of images (each measurement in a fresh process: a high-water mark
only grows within one). Images: 100 rendered benchmark cases tiled into a np.memmap on disk, so
the input itself is not held in memory.

    python benchmarks/mask_generation.py --size 128 --images 2000 --processes 1,2
    python benchmarks/mask_generation.py --size 128 --images 2000 --processes 2 --embed main
    python benchmarks/mask_generation.py --size 128 --memory 2000,20000
    python benchmarks/mask_generation.py --size 128 --images 1000 --slic   # SLIC stage alone
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _images(size: int, n: int, folder: Path):
    import numpy as np
    from gfsr_tf.config import BenchmarkConfig
    from gfsr_tf.datasets.synthetic import make_split
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"images_{size}_{n}.npy"
    shape = (n, size, size, 1)
    if not path.exists():
        base = make_split(BenchmarkConfig(image_size=size, seed=0), "train", 100)
        out = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
        for s in range(0, n, 100):
            out[s:s + 100] = base.images[:min(100, n - s)]
        out.flush()
        del out
    mm = np.load(path, mmap_mode="r")
    return mm, {0: base_marks(size)}


def base_marks(size: int):
    from gfsr_tf.config import BenchmarkConfig
    from gfsr_tf.datasets.synthetic import make_split
    case = make_split(BenchmarkConfig(image_size=size, seed=0), "train", 1)
    return case.lungs[0] > 0.5


def one_run(size: int, n: int, processes: int, folder: Path, shard: int,
            embed_in_workers="auto") -> dict:
    from gfsr_tf.config import ConceptConfig
    from gfsr_tf.guidance.sharded import propagate_masks_sharded
    images, annotations = _images(size, n, folder)
    out = folder / f"masks_{n}_{processes}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    manifest = propagate_masks_sharded(images, annotations, out, ConceptConfig(weights=None),
                                       shard_size=shard, processes=processes, progress=False,
                                       embed_in_workers=embed_in_workers)
    seconds = time.perf_counter() - t0
    slic = sum(v for k, v in manifest["timings"].items() if k.startswith("segments_"))
    return {"images": n, "processes": processes, "embed_in_workers": embed_in_workers,
            "seconds": seconds,
            "images_per_s": n / seconds, "pass1_images_per_s": n / slic,
            "peak_rss_mib": _peak_mib("self"),
            # the worker processes (joblib's loky pool, alive until exit): each one's peak
            "worker_peak_rss_mib": [_peak_mib(pid) for pid in _descendants(os.getpid())]}


def _peak_mib(pid) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child)] + _descendants(int(child))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--processes", default="1,2")
    p.add_argument("--memory", help="image counts for the memory curve, e.g. 2000,20000")
    p.add_argument("--slic", action="store_true", help="the SLIC stage alone: 1 vs N processes "
                   "on --images images (second, warm run of each: joblib's pool starts once)")
    p.add_argument("--shard", type=int, default=1000)
    p.add_argument("--folder", default=None)
    p.add_argument("--embed", choices=("auto", "main"), default="auto", help="auto: with "
                   "several processes and no GPU each worker embeds its own share (TensorFlow at "
                   "one thread); main: only SLIC in the workers, embeddings in the main process")
    p.add_argument("--one", help=argparse.SUPPRESS)   # "n,processes": one run, this process
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args(argv)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="gfsr_masks_"))
    if args.one:
        n, processes = (int(v) for v in args.one.split(","))
        print(json.dumps(one_run(args.size, n, processes, folder, args.shard,
                                 "auto" if args.embed == "auto" else False)))
        return
    if args.slic:
        import numpy as np
        from gfsr_tf.config import ConceptConfig
        from gfsr_tf.guidance.sharded import _slic_parallel
        images = np.asarray(_images(args.size, args.images, folder)[0])
        speeds = {}
        for processes in (int(k) for k in args.processes.split(",")):
            for _ in range(2):                        # the second run is timed
                t0 = time.perf_counter()
                _slic_parallel(images, ConceptConfig(), processes)
                speeds[processes] = len(images) / (time.perf_counter() - t0)
            print(f"SLIC, {processes} process(es): {speeds[processes]:.1f} img/s", flush=True)
        return speeds
    runs = []
    plan = [(args.images, int(k)) for k in args.processes.split(",")]
    if args.memory:
        plan = [(int(n), max(int(k) for k in args.processes.split(","))) for n in
                args.memory.split(",")]
    for n, processes in plan:
        r = subprocess.run([sys.executable, __file__, "--one", f"{n},{processes}", "--size",
                            str(args.size), "--shard", str(args.shard), "--folder", str(folder),
                            "--embed", args.embed],
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr[-2000:])
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    if not args.memory and len(runs) > 1:
        base = runs[0]
        for r in runs[1:]:
            print(f"{r['processes']} processes: {r['images_per_s'] / base['images_per_s']:.2f}x "
                  f"total, {r['pass1_images_per_s'] / base['pass1_images_per_s']:.2f}x "
                  "SLIC + embeddings pass")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "memory" if args.memory else "speed"
    path = out / f"mask_generation_{tag}_{args.size}px{'_embed-main' if args.embed == 'main' else ''}.json"
    path.write_text(json.dumps(runs, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
