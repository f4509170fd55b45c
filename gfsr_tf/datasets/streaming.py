"""Image sets larger than memory: decoded once into a disk cache, then streamed.

A loader asked to (`stream_above_mb`) returns a split whose uint8 pixels would exceed that many MB
as a read-only np.memmap over a cache file instead of an in-memory array. The cache is filled by a
tf.data pipeline over the file list - parallel decode + resize (`images.read_resized`, as the
in-memory path, so both give identical pixels), batched, prefetched - chunk
by chunk and resumably: an interrupted fill continues from its last finished chunk, and a rerun
with the same files (paths, sizes, modification times), size and channels reuses the cache.

The Trainer gathers each batch's rows from such an array inside its tf.data pipeline (`gather`,
`on_disk`), so training memory does not grow with the number of images; evaluation reads it in
batches. Any other row store (e.g. `guidance.sharded.ShardedMasks`) joins in by providing `shape`,
`dtype`, `__len__` and `gather(index)`.

Why not `tf.data.Dataset.cache(filename)`: its file is read back sequentially only, so an epoch
could only be reshuffled through a bounded shuffle buffer; the trainer's exact seeded permutation
per epoch - which exact resume and the one-vs-many-replica equivalence rely on - needs random
access by row, which a memmap gives.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .images import read_resized

STATE = "state.json"
PIXELS = "pixels.u8"


def default_cache_dir() -> Path:
    """$GFSR_CACHE, else ~/.cache/gfsr_tf: decoded images of streamed datasets."""
    return Path(os.environ.get("GFSR_CACHE", Path.home() / ".cache" / "gfsr_tf")) / "images"


def pixel_mb(n: int, size: int, channels: int) -> float:
    """Megabytes (2^20) of n uint8 images of size x size x channels."""
    return n * size * size * channels / 2 ** 20


def on_disk(array) -> bool:
    """True for a row store the trainer must gather per batch instead of indexing whole."""
    return isinstance(array, np.memmap) or hasattr(array, "gather")


def gather(store, index) -> np.ndarray:
    """Rows `index` (in that order) of an array, a memmap or a row store, in memory."""
    if hasattr(store, "gather"):
        return store.gather(index)
    return np.asarray(store[np.asarray(index)])


def _key(paths, size: int, channels: int) -> str:
    h = hashlib.sha256(json.dumps([size, channels]).encode())
    for p in paths:
        stat = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _write_state(folder: Path, state: dict) -> None:
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE)


def cache_images(paths, size: int, channels: int, cache_dir=None, *, chunk: int = 256,
                 progress: bool = True, skipped: list | None = None
                 ) -> tuple[np.memmap, np.ndarray]:
    """Decode `paths` once into `cache_dir` -> (read-only uint8 memmap (n, size, size, channels)
    of the readable files in order, the indices of those files in `paths`). Unreadable files are
    left out and appended to `skipped`. Resumable chunk by chunk; reused when nothing changed."""
    import tensorflow as tf
    from tqdm.auto import tqdm
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no image files to cache")
    folder = Path(cache_dir or default_cache_dir()) / f"images-{_key(paths, size, channels)}"
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size, size, channels)
    per_image = int(np.prod(shape))
    state_path = folder / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else \
        {"n_files": len(paths), "shape": list(shape), "next": 0, "kept": [], "skipped": [],
         "done": False}
    if not state["done"]:
        pixels = folder / PIXELS
        with open(pixels, "ab"):
            pass
        with open(pixels, "r+b") as f:  # drop anything written after the last finished chunk
            f.truncate(len(state["kept"]) * per_image)

        def decode(i):
            try:
                return read_resized(paths[int(i)], size, channels), True
            except ValueError:
                return np.zeros(shape, np.uint8), False

        def load(i):
            image, ok = tf.numpy_function(decode, [i], [tf.uint8, tf.bool])
            return i, tf.ensure_shape(image, shape), tf.ensure_shape(ok, ())

        ds = tf.data.Dataset.range(state["next"], len(paths)) \
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) \
            .batch(chunk).prefetch(2)
        bar = tqdm(total=len(paths), initial=state["next"], desc="decoding images", unit="img",
                   disable=not progress or len(paths) < 500)
        for index, images, ok in ds.as_numpy_iterator():
            with open(pixels, "ab") as f:
                f.write(np.ascontiguousarray(images[ok]).tobytes())
            state["kept"] += index[ok].tolist()
            state["skipped"] += index[~ok].tolist()
            state["next"] = int(index[-1]) + 1
            _write_state(folder, state)       # after the pixels: a crash repeats this chunk
            bar.update(len(index))
        bar.close()
        state["done"] = True
        _write_state(folder, state)
    if skipped is not None:
        skipped += [paths[i] for i in state["skipped"]]
    if not state["kept"]:
        raise ValueError(f"none of the {len(paths)} image files could be read, e.g. {paths[0]}")
    images = np.memmap(folder / PIXELS, np.uint8, "r", shape=(len(state["kept"]),) + shape)
    return images, np.asarray(state["kept"], np.int64)
