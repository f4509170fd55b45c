"""Class-folder image sets: `root/{train,test[,val]}/{class}/*` or `root/{class}/*` (split here).

The Kermany chest X-ray layout and Husky-vs-Wolf (LIME's experiment) are both read this way. A
validation split (and, without a test folder, a test split) is carved seeded, class-stratified
and grouped (`group_of`: e.g. Kermany patient ids) so no group lands in two splits. Unreadable
files are skipped, counted and reported.
"""
from __future__ import annotations

import logging
from pathlib import Path

from tqdm.auto import tqdm
import numpy as np

from .base import ImageSet
from .images import IMAGE_SUFFIXES, read_resized
from .splits import grouped_split
from .streaming import cache_images, pixel_mb

log = logging.getLogger(__name__)


def _class_folders(folder: Path, classes) -> list[str]:
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if classes is None:
        if len(found) < 2:
            raise FileNotFoundError(f"{folder}: expected one sub-folder per class, found "
                                    f"{found or 'none'}")
        return found
    for cls in classes:
        if not (folder / cls).is_dir():
            raise FileNotFoundError(f"class folder missing: {folder / cls}")
    return list(classes)


def list_class_files(folder: Path, classes) -> list[tuple[Path, int]]:
    """(path, label) of every image file in folder/{class}/, classes in label order, files
    sorted."""
    rows = []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"class folder has no images "
                                    f"({'/'.join(sorted(IMAGE_SUFFIXES))}): {folder / cls}")
        rows += [(path, label) for path in files]
    return rows


def read_class_folders(folder: Path, classes, size: int, channels: int, skipped: list):
    """(images list, labels list, names list) from folder/{class}/*, resized to size x size."""
    images, labels, names = [], [], []
    rows = list_class_files(folder, classes)
    for path, label in tqdm(rows, desc=f"reading {folder.name}", leave=False,
                            disable=len(rows) < 500):
        try:
            images.append(read_resized(path, size, channels))
        except ValueError:
            skipped.append(str(path))
            continue
        labels.append(label)
        names.append(path.name)
    return images, labels, names


def load_class_folders(root, size: int = 224, *, channels: int = 3, classes=None,
                       class_names=None, group_of=None, val_fraction: float = 0.1,
                       test_fraction: float = 0.2, seed: int = 0,
                       skipped: list | None = None, stream_above_mb: float | None = None,
                       cache_dir=None) -> dict[str, ImageSet]:
    """{train, val, test} from class folders. `classes`: the folder names in label order
    (default: sorted sub-folders); `class_names`: display names (default: the folder names);
    `group_of(file name) -> group id` keeps groups together when splitting.

    stream_above_mb: when the listed files' pixels at this size exceed it, every split is decoded
    once into `cache_dir` (`streaming.cache_images`) and a split still above it is returned as a
    disk-backed np.memmap (smaller ones are read into memory from the cache). The splits are
    then drawn over the listed files (before decoding), so with unreadable files they can differ
    from the in-memory path's, which splits the readable ones."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    skipped = [] if skipped is None else skipped
    split_root = (root / "train").is_dir()
    classes = _class_folders(root / "train" if split_root else root, classes)
    names_out = tuple(class_names or classes)
    group_of = group_of or (lambda name: name)

    def to_set(rows) -> ImageSet:
        images, labels, names = zip(*rows)
        return ImageSet(np.stack(images), np.asarray(labels, np.int64), names_out,
                        names=list(names))

    def read(folder):
        return list(zip(*read_class_folders(folder, classes, size, channels, skipped)))

    if stream_above_mb is not None:
        listed = list_class_files(root / "train" if split_root else root, classes)
        if split_root and (root / "val").is_dir():
            listed += list_class_files(root / "val", classes)
        tested = list_class_files(root / "test", classes) \
            if split_root and (root / "test").is_dir() else []
        if pixel_mb(len(listed) + len(tested), size, channels) > stream_above_mb:
            return _streamed_splits(listed, tested, size, channels, names_out, group_of,
                                    val_fraction, test_fraction, seed, skipped,
                                    stream_above_mb, cache_dir)
    pool = read(root / "train" if split_root else root)
    if split_root and (root / "val").is_dir():  # official val splits are often tiny: pool them
        pool += read(root / "val")
    test = read(root / "test") if split_root and (root / "test").is_dir() else None
    if skipped:
        log.warning("skipped %d unreadable image files, e.g. %s", len(skipped), skipped[0])
    labels = [r[1] for r in pool]
    groups = [group_of(r[2]) for r in pool]
    if test is None:
        train_i, val_i, test_i = grouped_split(
            labels, groups, (1 - val_fraction - test_fraction, val_fraction, test_fraction), seed)
        test = [pool[i] for i in test_i]
    else:
        train_i, val_i = grouped_split(labels, groups, (1 - val_fraction, val_fraction), seed)
    for split, index in (("validation", val_i), ("test", test)):
        if len(index) == 0:
            raise ValueError(f"{root}: too few images to carve a {split} split")
    return {"train": to_set([pool[i] for i in train_i]), "val": to_set([pool[i] for i in val_i]),
            "test": to_set(test)}


def _streamed_splits(listed, tested, size, channels, class_names, group_of, val_fraction,
                     test_fraction, seed, skipped, stream_above_mb, cache_dir) -> dict:
    labels = [label for _, label in listed]
    groups = [group_of(path.name) for path, _ in listed]
    if tested:
        train_i, val_i = grouped_split(labels, groups, (1 - val_fraction, val_fraction), seed)
        rows = {"train": [listed[i] for i in train_i], "val": [listed[i] for i in val_i],
                "test": tested}
    else:
        parts = grouped_split(labels, groups, (1 - val_fraction - test_fraction, val_fraction,
                                               test_fraction), seed)
        rows = {k: [listed[i] for i in part] for k, part in zip(("train", "val", "test"), parts)}
    out = {}
    for split, chosen in rows.items():
        if not chosen:
            raise ValueError(f"too few images to carve a {split} split")
        images, kept = cache_images([p for p, _ in chosen], size, channels, cache_dir,
                                    skipped=skipped)
        if pixel_mb(len(images), size, channels) <= stream_above_mb:
            images = np.array(images)
        out[split] = ImageSet(images, np.asarray([chosen[i][1] for i in kept], np.int64),
                              class_names, names=[chosen[i][0].name for i in kept])
    if skipped:
        log.warning("skipped %d unreadable image files, e.g. %s", len(skipped), skipped[0])
    return out
