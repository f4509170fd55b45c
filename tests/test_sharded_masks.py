"""Sharded, parallel, resumable relevance masks (`guidance.sharded`): an interrupted run resumes
from its last finished shard and equals an uninterrupted one exactly, and both equal the
in-memory `propagate_masks`; masks stream back through tf.data; a corrupt shard and a folder of
other settings are one clear error."""
import json

import numpy as np
import pytest

from gfsr_tf.config import BenchmarkConfig, ConceptConfig
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.guidance.concepts import propagate_masks
from gfsr_tf.guidance.sharded import iter_masks, mask_dataset, propagate_masks_sharded

# batch 4: a shard of 8 images is 2 embedding batches, one per worker process
CONFIG = ConceptConfig(weights=None, k=4, n_segments=20, batch_size=4)


@pytest.fixture(scope="module")
def data():
    d = make_split(BenchmarkConfig(image_size=32, seed=0), "train", 24)
    return d.images, {0: d.lungs[0] > 0.5, 5: [0, 1, 2]}


def _masks(folder):
    return np.concatenate([m for _, m in iter_masks(folder)])


@pytest.mark.slow  # ~10 s; moved 2026-12-06 to keep the default suite within 10 minutes
def test_interrupted_run_resumes_and_equals_uninterrupted_and_in_memory(data, tmp_path):
    images, annotations = data
    whole = propagate_masks_sharded(images, annotations, tmp_path / "a", CONFIG, shard_size=8,
                                    processes=2, progress=False)
    assert whole["segments_done"] == [0, 1, 2] and whole["masks_done"] == [0, 1, 2]
    part = propagate_masks_sharded(images, annotations, tmp_path / "b", CONFIG, shard_size=8,
                                   processes=2, progress=False, stop_after_shards=1)
    assert part["segments_done"] == [0] and part["masks_done"] == []
    with pytest.raises(ValueError, match="has not finished"):
        next(iter_masks(tmp_path / "b"))
    first = (tmp_path / "b" / "segments_00000.part0.npz").stat().st_mtime_ns
    propagate_masks_sharded(images, annotations, tmp_path / "b", CONFIG, shard_size=8,
                            processes=2, progress=False)
    assert (tmp_path / "b" / "segments_00000.part0.npz").stat().st_mtime_ns == first   # not redone
    np.testing.assert_array_equal(_masks(tmp_path / "a"), _masks(tmp_path / "b"))
    # interrupted in pass 2 (3 shards of pass 1, then 1 of the masks, made by worker processes)
    mid = propagate_masks_sharded(images, annotations, tmp_path / "c", CONFIG, shard_size=8,
                                  processes=2, progress=False, stop_after_shards=4)
    assert mid["segments_done"] == [0, 1, 2] and mid["masks_done"] == [0]
    propagate_masks_sharded(images, annotations, tmp_path / "c", CONFIG, shard_size=8,
                            processes=2, progress=False)
    np.testing.assert_array_equal(_masks(tmp_path / "c"), _masks(tmp_path / "a"))
    reference = propagate_masks(images, annotations, CONFIG, progress=False)
    np.testing.assert_array_equal(_masks(tmp_path / "a"), reference.masks)
    streamed = np.stack([m.numpy() for m in mask_dataset(tmp_path / "a")])
    np.testing.assert_array_equal(streamed, reference.masks)


def test_corrupt_shard_and_foreign_folder_are_clear_errors(data, tmp_path):
    images, annotations = data
    propagate_masks_sharded(images, annotations, tmp_path, CONFIG, shard_size=12, processes=1,
                            progress=False, stop_after_shards=2)
    (tmp_path / "segments_00001.part0.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="segments_00001.part0.npz is unreadable"):
        propagate_masks_sharded(images, annotations, tmp_path, CONFIG, shard_size=12,
                                processes=1, progress=False)
    with pytest.raises(ValueError, match="other images or settings"):
        propagate_masks_sharded(images, annotations, tmp_path, CONFIG, shard_size=6,
                                processes=1, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["segments_done"] == [0, 1]
    (tmp_path / "segments_00001.part0.npz").unlink()          # the documented recovery
    propagate_masks_sharded(images, annotations, tmp_path, CONFIG, shard_size=12, processes=1,
                            progress=False)
    assert _masks(tmp_path).shape == (24, 32, 32)
