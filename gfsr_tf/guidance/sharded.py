"""Relevance masks at scale (`concepts.propagate_masks` for image sets that do not fit in memory):
parallel, resumable, sharded.

  pass 1, per shard of `shard_size` images: over `processes` worker processes (joblib), each
          worker SLIC + the segment embeddings of its share, written by itself to
          segments_<k>.part<j>.npz (segment labels, one embedding row per segment, running sums
          for the normalisation); with a GPU only SLIC runs in the workers and the embeddings
          are batched on the accelerator in this process (`embed_in_workers`);
  k-means fitted on a bounded, seeded sample of at most `max_fit_segments` segment embeddings
          (drawn shard by shard), concept relevance from the annotated images;
  pass 2, per shard: every segment assigned to its concept, the concept maps written to
          masks_<k>.npz (a mask is its concept map looked up in the concept scores).
A manifest (manifest.json) records the finished shards of each pass and the parameters; a rerun
skips finished shards, so an interrupted run resumes from the last finished shard, and a shard
file is written atomically (a crash never leaves a half-written one; a corrupt one is an error
naming it, and deleting it recomputes that shard). Peak memory is one shard plus the k-means
sample, whatever the number of images. Masks stream back shard by shard (`iter_masks`,
`mask_dataset` for tf.data), and training reads them by row (`ShardedMasks`: the Trainer gathers
each batch's masks from it, in the seeded epoch order).

`images` is anything indexable by a slice that yields uint8 (n, H, W, C) - a numpy array, or a
np.memmap of a large file (a streamed split: `datasets.streaming`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..config import ConceptConfig
from .annotations import annotated_segments
from .concepts import concept_scores, normalise
from .embeddings import feature_extractor, segment_embeddings
from .segments import slic_segments

MANIFEST = "manifest.json"


def _slic_parallel(images: np.ndarray, config: ConceptConfig, processes: int) -> np.ndarray:
    if processes <= 1 or len(images) < 2 * processes:
        return slic_segments(images, config.n_segments, config.compactness,
                             min_size_factor=config.min_size_factor)
    from joblib import Parallel, delayed
    chunks = np.array_split(np.arange(len(images)), processes)
    parts = Parallel(n_jobs=processes)(delayed(slic_segments)(
        images[c[0]:c[-1] + 1], config.n_segments, config.compactness,
        min_size_factor=config.min_size_factor) for c in chunks)
    return np.concatenate(parts)


_WORKER: dict = {}      # per worker process: the extractor, built once and reused by each call


def _write_part(path: Path, segments: np.ndarray, emb: list) -> None:
    """One pass-1 file: SLIC labels (int16), one embedding row per segment, per-image segment
    counts and the running sums of the normalisation."""
    rows = np.concatenate(emb).astype(np.float32)
    if segments.max() < np.iinfo(np.int16).max:      # SLIC labels: a few hundred at most
        segments = segments.astype(np.int16)
    _save(path, segments=segments, embeddings=rows,
          counts=np.array([len(e) for e in emb], np.int64),
          sums=rows.astype(np.float64).sum(0), squares=(rows.astype(np.float64) ** 2).sum(0))


def _worker_part(images: np.ndarray, config: ConceptConfig, path: Path) -> list:
    """Pass 1 on one worker's share, written by the worker itself (compression included, so
    nothing big travels back): SLIC, then embeddings with TensorFlow at one thread (the workers
    share the cores). Returns the warnings of building the extractor."""
    import tensorflow as tf
    key = (images.shape[1:3], config.layer, config.weights, config.seed)
    if _WORKER.get("key") != key:
        try:    # possible only before this process's TensorFlow runtime starts
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        warnings: list = []
        _WORKER.update(key=key, warnings=warnings, extractor=feature_extractor(
            images.shape[1:3] + (3,), config.layer, config.weights, warnings, config.seed))
    segments = slic_segments(images, config.n_segments, config.compactness,
                             min_size_factor=config.min_size_factor)
    _write_part(path, segments, segment_embeddings(images, segments, _WORKER["extractor"],
                                                   config.batch_size))
    return _WORKER["warnings"]


def _parts_in_workers(images: np.ndarray, config: ConceptConfig, processes: int,
                      paths, warnings: list | None) -> int:
    """Pass 1 of one shard over `processes` worker processes, each on a contiguous run of
    whole embedding batches (every batch the one a single process would form), each writing
    its part file; returns the number of parts."""
    from joblib import Parallel, delayed
    batches = -(-len(images) // config.batch_size)
    groups = [g for g in np.array_split(np.arange(batches), processes) if len(g)]
    bounds = [(g[0] * config.batch_size, min((g[-1] + 1) * config.batch_size, len(images)))
              for g in groups]
    said = Parallel(n_jobs=len(bounds))(delayed(_worker_part)(
        np.asarray(images[a:b]), config, path) for (a, b), path in zip(bounds, paths))
    for lines in said:
        if warnings is not None:
            warnings += [w for w in lines if w not in warnings]
    return len(bounds)


def _part_paths(out: Path, k: int, parts: int) -> list[Path]:
    return [out / f"segments_{k:05d}.part{j}.npz" for j in range(parts)]


def _pass1(out: Path, k: int, manifest: dict,
           keys=("segments", "embeddings", "counts")) -> dict:
    """Shard k's pass-1 arrays `keys`, its parts joined (only those arrays are read: the
    running sums need none of the big ones)."""
    parts = [_load(p, keys) for p in _part_paths(out, k, manifest["parts"][str(k)])]
    return {key: sum(z[key] for z in parts) if key in ("sums", "squares")
            else np.concatenate([z[key] for z in parts]) for key in keys}


def _save(path: Path, **arrays) -> None:
    """An .npz (np.load reads it) deflated at level 1, not np.savez_compressed's 6: measured
    0.9 vs 2.2 s for a 1,000-image shard at 128 px for 31 vs 28 MB - the shard writes are the
    serial part of pass 1, so the faster level is what lets the workers scale."""
    import zipfile
    tmp = path.with_name(path.stem + ".tmp.npz")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    os.replace(tmp, path)                 # atomic: a shard file is whole or absent


def _load(path: Path, keys=None) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:     # an npz reads each array on access
            return {k: z[k] for k in (z.files if keys is None else keys)}
    except Exception as exc:  # numpy raises several types for truncated files
        raise ValueError(f"shard file {path} is unreadable ({type(exc).__name__}); delete it "
                         "and rerun to recompute that shard") from None


def annotation_digest(annotations: dict) -> str:
    """What the annotations say (marks or segment ids per image), hashed: other annotations of
    the same images make other masks."""
    h = hashlib.sha256()
    for i in sorted(annotations):
        ann = np.asarray(annotations[i])
        h.update(f"{int(i)}|{ann.dtype}|{ann.shape}|".encode() + ann.tobytes())
    return h.hexdigest()


def _manifest(out: Path, n: int, shape, annotations: dict, config: ConceptConfig,
              shard_size: int) -> dict:
    key = {"n_images": int(n), "image_shape": list(shape), "shard_size": int(shard_size),
           "config": dataclasses.asdict(config),
           "annotations": sorted(int(i) for i in annotations),
           "annotations_sha256": annotation_digest(annotations)}
    path = out / MANIFEST
    if path.exists():
        manifest = json.loads(path.read_text())
        if manifest["key"] != key:
            raise ValueError(f"{out} holds masks of other images or settings; use another "
                             "folder (or delete it)")
        return manifest
    manifest = {"key": key, "segments_done": [], "parts": {}, "masks_done": [], "timings": {}}
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, manifest)
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)


def propagate_masks_sharded(images, annotations: dict, out_dir, config: ConceptConfig = ConceptConfig(),
                            *, shard_size: int = 10_000, processes: int = 2,
                            embed_in_workers: bool | str = "auto",
                            progress: bool = True, warnings: list | None = None,
                            stop_after_shards: int | None = None) -> dict:
    """Write masks of every image to shards under `out_dir`; returns the manifest. annotations:
    {image index: bool (H, W) marks | list of segment ids} (as `propagate_masks`).

    processes: worker processes for pass 1. embed_in_workers: each worker also computes its
    share's embeddings, TensorFlow at one thread each ("auto": when no GPU is visible - on
    CPUs one TensorFlow process uses 2 cores poorly (measured 1.28x its 1-thread speed on
    this project's 2 cores), while two 1-thread processes use both fully); otherwise only SLIC
    runs in the workers and the embeddings in this process, batched on the accelerator. The
    embeddings are the same either way (per-image results do not depend on the batch or the
    thread count; tested to be bit-identical).
    stop_after_shards: stop after computing this many shards in this call (tests interrupt a
    run this way; a rerun resumes)."""
    from sklearn.cluster import KMeans
    from tqdm.auto import tqdm
    n = len(images)
    if n == 0:
        raise ValueError("no images to make masks for")
    if not annotations:
        raise ValueError("no annotations given: nothing to learn relevance from")
    bad = [i for i in annotations if not 0 <= i < n]
    if bad:
        raise ValueError(f"annotations for image indices {bad} outside 0..{n - 1}")
    if shard_size < 1 or processes < 1:
        raise ValueError(f"shard_size and processes must be >= 1, got {shard_size}, {processes}")
    out = Path(out_dir)
    first = np.asarray(images[0:1])
    manifest = _manifest(out, n, first.shape[1:], annotations, config, shard_size)
    bounds = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
    budget = [stop_after_shards]

    def spend() -> bool:
        if budget[0] is None:
            return False
        budget[0] -= 1
        return budget[0] < 0

    # pass 1: segments and embeddings
    extractor = None
    if embed_in_workers == "auto":
        import tensorflow as tf
        embed_in_workers = not tf.config.list_physical_devices("GPU")
    in_workers = bool(embed_in_workers) and processes > 1
    bar = tqdm(total=n, desc="segments + embeddings", unit="img", disable=not progress)
    for k, (a, b) in enumerate(bounds):
        if k in manifest["segments_done"]:
            if all(p.exists() for p in _part_paths(out, k, manifest["parts"][str(k)])):
                bar.update(b - a)
                continue
            manifest["segments_done"].remove(k)           # deleted by the user: recompute it
            manifest.pop("scores", None)                    # and everything that used it
            manifest["masks_done"] = []
        if spend():
            return manifest
        t0 = time.perf_counter()
        chunk = np.asarray(images[a:b])
        if in_workers:
            parts = _parts_in_workers(chunk, config, processes, _part_paths(out, k, processes),
                                      warnings)
        else:
            segments = _slic_parallel(chunk, config, processes)
            if extractor is None:
                extractor = feature_extractor(chunk.shape[1:3] + (3,), config.layer,
                                              config.weights, warnings, config.seed)
            parts = 1
            _write_part(_part_paths(out, k, 1)[0], segments,
                        segment_embeddings(chunk, segments, extractor, config.batch_size))
        manifest["parts"][str(k)] = parts
        manifest["segments_done"].append(k)
        manifest["timings"][f"segments_{k}_s"] = time.perf_counter() - t0
        _write_manifest(out, manifest)
        bar.update(b - a)
    bar.close()
    # k-means on a bounded sample; the normalisation from exact running sums
    if "scores" not in manifest:
        t0 = time.perf_counter()
        sums = squares = None
        total = 0
        for k in range(len(bounds)):
            z = _pass1(out, k, manifest, ("sums", "squares", "counts"))
            sums = z["sums"] if sums is None else sums + z["sums"]
            squares = z["squares"] if squares is None else squares + z["squares"]
            total += int(z["counts"].sum())
        if config.k > total:
            raise ValueError(f"k={config.k} concepts but only {total} segments in the image set")
        mean = sums / total
        std = np.sqrt(np.maximum(squares / total - mean ** 2, 0))
        rng = np.random.default_rng(config.seed)
        take = rng.choice(total, min(total, config.max_fit_segments), replace=False)
        take.sort()
        sample, offset = [], 0
        for k in range(len(bounds)):
            rows = _pass1(out, k, manifest, ("embeddings",))["embeddings"]
            mine = take[(take >= offset) & (take < offset + len(rows))] - offset
            sample.append(rows[mine])
            offset += len(rows)
        def norm(x):
            return normalise(np.asarray(x, np.float64), config.normalise, mean, std)
        kmeans = KMeans(config.k, n_init=4, random_state=config.seed).fit(
            norm(np.concatenate(sample)))
        chosen, shard = [], (None, None)
        for i, ann in sorted(annotations.items()):     # in order: each shard read once
            k = i // shard_size
            if shard[0] != k:
                shard = (k, _pass1(out, k, manifest))
            z = shard[1]
            local = i - k * shard_size
            start = int(z["counts"][:local].sum())
            labels = kmeans.predict(norm(z["embeddings"][start:start + z["counts"][local]]))
            if isinstance(ann, np.ndarray):
                ids = np.flatnonzero(annotated_segments(z["segments"][local], ann,
                                                        config.min_fraction))
            else:
                ids = np.asarray(ann, int)
                if ids.size and (ids.min() < 0 or ids.max() >= len(labels)):
                    raise ValueError(f"image {i}: segment ids must be in 0..{len(labels) - 1}, "
                                     f"got {list(ids)}")
            chosen.append(labels[ids])
        manifest["scores"] = concept_scores(np.concatenate(chosen), config.k).tolist()
        manifest["n_annotated_segments"] = int(sum(len(c) for c in chosen))
        manifest["centres"] = kmeans.cluster_centers_.tolist()
        manifest["mean"], manifest["std"] = mean.tolist(), std.tolist()
        manifest["n_segments"] = int(total)
        manifest["timings"]["kmeans_s"] = time.perf_counter() - t0
        _write_manifest(out, manifest)
    # pass 2: masks, shards in parallel over the worker processes
    pending = []
    for k in range(len(bounds)):
        if k in manifest["masks_done"] and (out / f"masks_{k:05d}.npz").exists():
            continue
        if k in manifest["masks_done"]:
            manifest["masks_done"].remove(k)
        pending.append(k)
    if budget[0] is not None:                  # stop_after_shards: what is left of it
        pending = pending[:max(budget[0], 0)]
    if pending:
        from joblib import Parallel, delayed
        # what pass 2 needs from the manifest (a worker process reads no manifest)
        fitted = {key: manifest[key] for key in ("parts", "centres", "mean", "std")}
        jobs = Parallel(n_jobs=min(processes, len(pending)), return_as="generator")(
            delayed(_assign_shard)(out, k, fitted, config.normalise) for k in pending)
        for k, seconds in tqdm(zip(pending, jobs), total=len(pending), desc="masks",
                               disable=not progress):
            manifest["masks_done"].append(k)
            manifest["timings"][f"masks_{k}_s"] = seconds
            _write_manifest(out, manifest)
    return manifest


def _assign_shard(out: Path, k: int, fitted: dict, normalisation: str) -> float:
    """Pass 2 of shard k: every segment to its nearest concept centre (k-means' own
    assignment rule, in float64 for a stable argmin), the concept maps written to
    masks_<k>.npz (a mask = scores[map]). Returns the seconds it took."""
    t0 = time.perf_counter()
    centres = np.asarray(fitted["centres"], np.float64)
    z = _pass1(out, k, fitted)
    x = normalise(np.asarray(z["embeddings"], np.float64), normalisation,
                  np.asarray(fitted["mean"]), np.asarray(fitted["std"]))
    # in blocks of rows: the (rows, k, D) differences of a whole 10k-image shard would take GBs
    labels = np.concatenate([
        np.argmin(((x[i:i + 4096, None, :] - centres[None]) ** 2).sum(-1), 1)
        for i in range(0, len(x), 4096)])
    per_image = np.split(labels, np.cumsum(z["counts"])[:-1])
    concept_map = np.stack([per_image[i][z["segments"][i]]
                            for i in range(len(z["counts"]))]).astype(np.int16)
    _save(out / f"masks_{k:05d}.npz", concept_map=concept_map)
    return time.perf_counter() - t0


def finished(out_dir) -> bool:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return False
    m = json.loads(path.read_text())
    n, size = m["key"]["n_images"], m["key"]["shard_size"]
    return len(m["masks_done"]) == -(-n // size)


def iter_masks(out_dir):
    """(start index, float32 masks of one shard) in order, one shard in memory at a time."""
    out = Path(out_dir)
    if not finished(out):
        raise ValueError(f"{out}: the sharded mask run has not finished; rerun it to resume")
    m = json.loads((out / MANIFEST).read_text())
    size = m["key"]["shard_size"]
    scores = np.asarray(m["scores"], np.float32)
    for k in range(-(-m["key"]["n_images"] // size)):
        yield k * size, scores[_load(out / f"masks_{k:05d}.npz")["concept_map"]]


def mask_dataset(out_dir):
    """A tf.data.Dataset of (H, W) float32 masks in image order, streamed from the shards."""
    import tensorflow as tf
    out = Path(out_dir)
    m = json.loads((out / MANIFEST).read_text()) if finished(out) else None
    if m is None:
        raise ValueError(f"{out}: the sharded mask run has not finished; rerun it to resume")
    h, w = m["key"]["image_shape"][:2]

    def masks():
        for _, shard in iter_masks(out):
            yield from shard

    return tf.data.Dataset.from_generator(
        masks, output_signature=tf.TensorSpec((h, w), tf.float32))


class ShardedMasks:
    """A finished sharded run's masks as a read-only (N, H, W) float32 row store: what the
    Trainer takes as `targets["mask"]` when the masks do not fit in memory.

    A mask is its concept map looked up in the concept scores, so only the int16 concept maps
    (what masks_<k>.npz hold) are kept: copied once, shard by shard, into one memory-mapped
    concept_maps.npy (random row access; the compressed shards have none)."""

    def __init__(self, out_dir):
        out = Path(out_dir)
        if not finished(out):
            raise ValueError(f"{out}: the sharded mask run has not finished; rerun it to resume")
        manifest = json.loads((out / MANIFEST).read_text())
        n, (h, w) = manifest["key"]["n_images"], manifest["key"]["image_shape"][:2]
        self.scores = np.asarray(manifest["scores"], np.float32)
        path = out / "concept_maps.npy"
        if not path.exists():
            tmp = out / "concept_maps.tmp.npy"
            maps = np.lib.format.open_memmap(tmp, "w+", np.int16, (n, h, w))
            for k in range(len(manifest["masks_done"])):
                start = k * manifest["key"]["shard_size"]
                shard = _load(out / f"masks_{k:05d}.npz")["concept_map"]
                maps[start:start + len(shard)] = shard
            maps.flush()
            del maps
            os.replace(tmp, path)
        self.concept_maps = np.load(path, mmap_mode="r")
        self.shape, self.dtype = (n, h, w), np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:      # a slice or an index array
        return self.scores[np.asarray(self.concept_maps[index])]

    def gather(self, index) -> np.ndarray:
        return self[np.asarray(index)]


class _ShardedSegments:
    """SLIC labels of chosen images, read from their shards' pass-1 files (the report's few
    concept examples; training never needs them)."""

    def __init__(self, out: Path, manifest: dict):
        self.out, self.manifest = out, manifest
        self.shard_size = manifest["key"]["shard_size"]

    def __getitem__(self, index) -> np.ndarray:
        index = np.atleast_1d(np.asarray(index))
        shards = {k: _pass1(self.out, k, self.manifest, ("segments",))["segments"]
                  for k in set((index // self.shard_size).tolist())}
        return np.stack([shards[i // self.shard_size][i % self.shard_size] for i in index])


def sharded_concepts(images, annotations: dict, config: ConceptConfig, cache_dir=None, *,
                     shard_size: int = 10_000, processes: int | None = None,
                     progress: bool = True, warnings: list | None = None):
    """`propagate_masks` for images that do not fit in memory: the sharded run (resumed if it
    was interrupted) under cache_dir, returned with the fields of `concepts.ConceptMasks`
    (masks: a `ShardedMasks` row store; segments and concept maps read by index)."""
    from types import SimpleNamespace
    if config.position_weight > 0:
        raise ValueError("concepts.position_weight is not supported for streamed (sharded) "
                         "images: set it to 0 or load the images into memory")
    # the images are named by their cache file (whose name is the digest of the source files)
    source = getattr(images, "filename", None) or id(images)
    key = hashlib.sha256(json.dumps([str(source), list(images.shape), dataclasses.asdict(config),
                                     annotation_digest(annotations)]).encode()).hexdigest()[:16]
    out = Path(cache_dir or ".") / f"sharded-{key}"
    cached = finished(out)
    manifest = propagate_masks_sharded(images, annotations, out, config, shard_size=shard_size,
                                       processes=processes or os.cpu_count() or 1,
                                       progress=progress, warnings=warnings)
    masks = ShardedMasks(out)
    total = sum(manifest["timings"].values())    # compute time over every (resumed) call
    timings = {**manifest["timings"], "total_s": total,
               "images_per_s": len(images) / max(total, 1e-9)}
    return SimpleNamespace(masks=masks, concept_map=masks.concept_maps,
                           segments=_ShardedSegments(out, manifest), scores=masks.scores,
                           n_annotated_images=len(annotations),
                           n_annotated_segments=manifest["n_annotated_segments"],
                           timings=timings, cached=cached, folder=str(out))
