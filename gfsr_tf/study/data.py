"""A study's data: the embedded benchmark, or a real dataset read through `datasets`."""
from __future__ import annotations

import numpy as np

from ..datasets.base import ImageSet


def load_data(config, warnings: list | None = None) -> dict[str, ImageSet]:
    """Benchmark splits (train, val, test_correlated, test_decorrelated), or with
    config.data_dir a real dataset (`datasets.load_dataset`: train, val, test) at
    config.benchmark.image_size px."""
    if not config.data_dir and config.requires_data_dir:
        raise ValueError(f"{config.name} runs on real data: give --data-dir (see --help)")
    gaze = config.gaze
    heatmaps = dict(sigma_px=gaze.sigma_px, sigma_fraction=gaze.sigma_fraction,
                    weighting=gaze.weighting)
    if not config.data_dir and config.dataset == "gaze_simulation":
        from ..datasets.gaze_sim import make_gaze_simulation
        return make_gaze_simulation(config.benchmark, **heatmaps)
    if not config.data_dir:
        from ..datasets.synthetic import make_benchmark
        return make_benchmark(config.benchmark)
    from ..datasets import SHORTCUT_KINDS, load_dataset
    if config.dataset in SHORTCUT_KINDS:
        from ..datasets.real_shortcut import load_real_shortcut
        return load_real_shortcut(config.dataset, config.data_dir, config.benchmark,
                                  seed=config.train.seed,
                                  test_limit=config.benchmark.n_test if config.smoke else None)
    skipped: list[str] = []
    options = {**heatmaps, "image_list": gaze.image_list, "warnings": warnings} \
        if config.dataset in ("egd_cxr", "gaze_simulation", "auto") else {}
    data = load_dataset(config.dataset if config.dataset != "gaze_simulation" else "egd_cxr",
                        config.data_dir, config.benchmark.image_size,
                        val_fraction=config.val_fraction, seed=config.train.seed,
                        skipped=skipped, stream_above_mb=config.stream_above_mb,
                        cache_dir=config.image_cache, **options)
    if skipped and warnings is not None:
        warnings.append(f"skipped {len(skipped)} unreadable image files: "
                        + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    return data


def data_summary(data: dict[str, ImageSet]) -> dict:
    """Per split: n, positives (class-1 count), the count of every class, and per image the
    labels and (benchmark) marker flags, so anyone can recompute figures from the stored
    predictions."""
    out = {}
    for k, v in data.items():
        out[k] = {"n": len(v), "positives": int((v.labels == 1).sum()),
                  "per_class": dict(zip(v.class_names,
                                        np.bincount(v.labels, minlength=v.num_classes).tolist())),
                  "labels": v.labels.tolist()}
        if v.has_marker is not None:
            out[k]["has_marker"] = v.has_marker.astype(bool).tolist()
    return out
