"""Data at scale (`datasets.streaming`, `guidance.sharded.ShardedMasks`): a class-folder dataset
above the memory threshold is decoded once into a disk cache and comes back as memmaps with the
same splits and pixels as the in-memory loader; an interrupted cache fill resumes; unreadable
files are left out and reported; the Trainer streams disk-backed images and sharded masks into
exactly the batches - and the training - of the in-memory arrays."""
import json

import cv2
import numpy as np
import pytest

from gfsr_tf.config import BenchmarkConfig, ConceptConfig, TrainConfig
from gfsr_tf.datasets.folders import load_class_folders
from gfsr_tf.datasets.streaming import cache_images
from gfsr_tf.datasets.synthetic import make_split
from gfsr_tf.guidance.sharded import ShardedMasks, iter_masks, propagate_masks_sharded


def _write_folders(root, per_class=9):
    rng = np.random.default_rng(0)
    for c, cls in enumerate(("NORMAL", "PNEUMONIA")):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)
            if i % 3 == 0:      # 16-bit grayscale PNG: scaled by its own range
                image = (image[..., 0].astype(np.uint16) * 257)
            suffix = ".jpg" if i % 3 == 1 else ".png"
            cv2.imwrite(str(root / cls / f"img{c}_{i}{suffix}"), image)


def test_streamed_class_folders_equal_the_in_memory_loader(tmp_path):
    _write_folders(tmp_path / "data")
    memory = load_class_folders(tmp_path / "data", 16, channels=3, seed=1)
    streamed = load_class_folders(tmp_path / "data", 16, channels=3, seed=1, stream_above_mb=0,
                                  cache_dir=tmp_path / "cache")
    assert set(streamed) == {"train", "val", "test"}
    for split in memory:
        assert isinstance(streamed[split].images, np.memmap)
        np.testing.assert_array_equal(streamed[split].images, memory[split].images)
        np.testing.assert_array_equal(streamed[split].labels, memory[split].labels)
        assert streamed[split].names == memory[split].names
    # above the data's size (18 x 16 x 16 x 3 bytes): the in-memory loader's arrays
    small = load_class_folders(tmp_path / "data", 16, seed=1, stream_above_mb=1.0,
                               cache_dir=tmp_path / "cache")
    assert not isinstance(small["train"].images, np.memmap)


def test_cache_fill_resumes_after_an_interruption_and_skips_unreadable_files(tmp_path):
    _write_folders(tmp_path / "data", per_class=5)
    paths = sorted((tmp_path / "data").rglob("*.*"))
    (tmp_path / "data" / "broken.png").write_bytes(b"not an image")
    paths.insert(3, tmp_path / "data" / "broken.png")
    skipped = []
    whole, kept = cache_images(paths, 12, 1, tmp_path / "a", chunk=4, progress=False,
                               skipped=skipped)
    assert skipped == [str(paths[3])] and 3 not in kept and len(whole) == len(paths) - 1
    # interrupted after the first chunk, mid-way through writing the second one
    folder = next((tmp_path / "a").iterdir())
    state = json.loads((folder / "state.json").read_text())
    first = [i for i in state["kept"] if i < 4]
    (folder / "state.json").write_text(json.dumps(
        {**state, "next": 4, "kept": first, "skipped": [3], "done": False}))
    with open(folder / "pixels.u8", "r+b") as f:
        f.truncate(len(first) * 144 + 100)                  # part of the next chunk on disk
    again, kept_again = cache_images(paths, 12, 1, tmp_path / "a", chunk=4, progress=False)
    np.testing.assert_array_equal(kept_again, kept)
    fresh, _ = cache_images(paths, 12, 1, tmp_path / "b", chunk=5, progress=False)
    np.testing.assert_array_equal(again, fresh)
    np.testing.assert_array_equal(whole, fresh)
    with pytest.raises(ValueError, match="none of the 1 image files could be read"):
        cache_images([tmp_path / "data" / "broken.png"], 12, 1, tmp_path / "c", progress=False)


def test_trainer_streams_disk_images_and_sharded_masks_into_the_same_training(tmp_path):
    from gfsr_tf.methods import get_method
    from gfsr_tf.models import build_classifier
    from gfsr_tf.presets import preset
    from gfsr_tf.training import Trainer
    data = make_split(BenchmarkConfig(image_size=32, seed=0), "train", 20)
    config = ConceptConfig(weights=None, k=4, n_segments=20)
    propagate_masks_sharded(data.images, {0: data.lungs[0] > 0.5, 3: [0, 1]}, tmp_path / "m",
                            config, shard_size=8, processes=1, progress=False)
    masks = np.concatenate([m for _, m in iter_masks(tmp_path / "m")])
    sharded = ShardedMasks(tmp_path / "m")
    order = np.array([17, 2, 9, 9, 0])
    np.testing.assert_array_equal(sharded.gather(order), masks[order])
    stored = np.lib.format.open_memmap(tmp_path / "images.npy", "w+", np.uint8,
                                       data.images.shape)
    stored[:] = data.images
    stored.flush()
    on_disk = data.subset(np.arange(len(data)))
    on_disk.images = np.load(tmp_path / "images.npy", mmap_mode="r")
    method = get_method("gfsr")
    options = method.make_config({"warmup_epochs": 0})
    train = TrainConfig(batch_size=8, seed=0, epochs=1, steps_per_epoch=2, monitor="last")
    losses = []
    for name, images, targets in (("memory", data, {"mask": masks}),
                                  ("disk", on_disk, {"mask": sharded})):
        model = build_classifier(2, (32, 32, 3), backbone="small_cnn", dropout=0.0, seed=0)
        trainer = Trainer(model, tmp_path / name, method.step_factory(options, preset("smoke")),
                          train=train, verbose=0)
        batches = [{k: v.numpy() for k, v in b.items()}
                   for b in trainer._dataset(images, targets, 2)]
        if name == "memory":
            reference = batches
        else:
            assert len(batches) == len(reference) == 2    # 20 images, full batches of 8
            for got, want in zip(batches, reference):
                assert set(got) == set(want) == {"image", "label", "mask"}
                for k in want:
                    assert got[k].dtype == want[k].dtype
                    np.testing.assert_array_equal(got[k], want[k])
        losses.append(trainer.fit(images, data, targets)[0]["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)


@pytest.mark.slow  # two `gfsr masks` processes: ~20 s (the in-process tests above cover the logic)
def test_masks_cli_streams_large_image_folders_into_the_same_masks(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    data = make_split(BenchmarkConfig(image_size=32, seed=0), "train", 12)
    (tmp_path / "images").mkdir()
    for i, image in enumerate(data.images):
        cv2.imwrite(str(tmp_path / "images" / f"x{i:02d}.png"), image)
    (tmp_path / "useful.json").write_text(json.dumps({"x01": [0, 2], "x07": [1]}))
    common = [sys.executable, "-m", "gfsr_tf.cli", "masks", "--images", str(tmp_path / "images"),
              "--annotations", str(tmp_path / "useful.json"), "--size", "32", "--weights",
              "none", "--k", "3", "--n-segments", "20", "--quiet"]
    outs = []
    for name, extra in (("memory", []), ("streamed", ["--stream-above-mb", "0",
                                                      "--shard-size", "5"])):
        r = subprocess.run(common + ["--out", str(tmp_path / name)] + extra, cwd=root,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(tmp_path / name)
    section = json.loads((outs[1] / "masks.json").read_text())
    assert section["storage"].startswith("sharded: ") and section["n_annotated_segments"] == 3
    assert json.loads((outs[0] / "masks.json").read_text())["storage"] == "memory"
    masks = [np.stack([cv2.imread(str(o / "masks" / f"x{i:02d}.png"), cv2.IMREAD_UNCHANGED)
                       for i in range(12)]) for o in outs]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert len(np.unique(masks[1])) >= 2 and (outs[1] / "concepts.png").exists()
