"""The SegX / SegU study (`experiments/segx.py`): train the segmenter and the multi-label
classifiers through the generic loop, then on the evaluation split explain every
predicted-positive (image, class) pair with Grad-CAM and expected gradients, mask the maps with
the segmentation (SegX) and score the agreement of map and segmentation as a certainty (SegU).

Run folder runs/<name>/: one folder per trained variant (best.keras, model card, metrics.jsonl),
segx_maps.npz (the pairs' maps, segmentations and ground truth the figures draw from),
report.json (`segx` section, see `segx_section`), summary.md, report.html and figures.
Rerunning the command resumes: trained variants are read back, only evaluation is repeated.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import StudyConfig
from ...metrics.classification import multilabel_metrics, multilabel_thresholds
from ...metrics.segx import (ORDERS, certainty_summary, combined_score, iou_ceiling,
                               paired_difference, segu_certainty, segx_scores)
from ...losses.segmentation import dice_iou
from .. import get_method
from . import region_of
from ...saliency.cam_model import last_conv_layer
from ...preprocessing import get_preprocessor
from ...study.data import data_summary, load_data
from ...training.distribute import recorded
from ...study.run import finish, train_variant

EXPLAINERS = ("gradcam", "expected_gradients")
LAST = "gradcam_last"     # Grad-CAM at the backbone's last block, when `gradcam` reads another


@dataclass
class SegxSettings:
    region: str = "lungs"               # the segmenter's target: lungs (benchmark) | lesions
    eg_images: int = 100                # expected gradients on at most this many test images
    eg_samples: int = 50                # draws of (background, t) per pair
    background: int = 50                # seeded validation images
    top_k: float = 5.0                  # IoU@k%
    n_resamples: int = 1000             # bootstrap
    seed: int = 0


def class_masks(data) -> np.ndarray:
    """(N, K, H, W) per-class ground truth: the data's own, else the lesion mask under the true
    class (single-label data: HAM10000, the benchmark) and nothing under the others."""
    if data.class_masks is not None:
        return np.asarray(data.class_masks, bool)
    n, (h, w) = len(data), data.images.shape[1:3]
    out = np.zeros((n, data.num_classes, h, w), bool)
    if data.lesions is not None:
        out[np.arange(n), data.labels] = np.asarray(data.lesions, bool)
    return out


def predicted_pairs(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(M, 2) rows (image, class) with p_j > tau_j, image-major."""
    return np.argwhere(probs > thresholds[None, :])


def _predictor(model, batch_size=64):
    """The model's traced inference pass over arrays (one trace per model)."""
    import tensorflow as tf
    forward = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    return lambda x: np.concatenate([np.asarray(forward(tf.constant(x[i:i + batch_size])))
                                     for i in range(0, len(x), batch_size)])


def _maps(explainer, model, x, cls, layer, background, settings, verbose) -> np.ndarray:
    from ...saliency import explain_posthoc
    if len(x) == 0:
        return np.zeros((0,) + x.shape[1:3], np.float32)
    if explainer in ("gradcam", LAST):
        return explain_posthoc(model, x, "gradcam", layer=layer, class_index=cls,
                               batch_size=64).heatmaps
    from ...saliency.expected_gradients import expected_gradients
    return expected_gradients(model, x, cls, background, n_samples=settings.eg_samples,
                              seed=settings.seed, verbose=verbose)


def _table3(maps, seg, truth, settings, rng) -> dict:
    """Table 3 for pairs with a ground truth: original vs SegX (both orders), paired
    differences, and the controls."""
    k, n_boot = settings.top_k, settings.n_resamples
    out: dict = {}
    for order in ORDERS:
        scores = segx_scores(maps, seg, truth, order, k)
        suffix = "" if order == "mask_first" else "_binarise_first"
        for metric in ("iou_top5", "auitc"):
            if metric == "auitc" and suffix:
                continue  # AUITC scores the masked continuous map: one value for both orders
            entry = out.setdefault(metric, {})
            entry.setdefault("original", _mean(scores["original"][metric]))
            entry["segx" + suffix] = _mean(scores["segx"][metric])
            entry["difference" + suffix] = paired_difference(
                scores["segx"][metric], scores["original"][metric], n_boot, settings.seed)
            if not suffix:
                out.setdefault("_per_pair", {})[metric] = scores
    random_maps = rng.random(maps.shape).astype(np.float32)
    control = segx_scores(random_maps, seg, truth, "mask_first", k)["segx"]
    oracle = segx_scores(maps, truth, truth, "mask_first", k)["segx"]
    out["controls"] = {"random_map_segx": {m: _mean(control[m]) for m in control},
                       "oracle_segmentation_segx": {m: _mean(oracle[m]) for m in oracle},
                       "real_minus_random_segx_iou_top5": paired_difference(
                           out["_per_pair"]["iou_top5"]["segx"]["iou_top5"],
                           control["iou_top5"], n_boot, settings.seed),
                       "iou_top5_ceiling": iou_ceiling(truth, k)}
    out.pop("_per_pair")
    return out


def _cell(maps, seg, truth, gt_defined, correct, probs_pair, settings, rng) -> dict:
    """One model x explainer: Table 3 (pairs with a ground truth) and Table 4 (all pairs)."""
    k, n_boot = settings.top_k, settings.n_resamples
    t3 = gt_defined
    out: dict = {"n_pairs": int(len(maps)), "n_table3": int(t3.sum())}
    if t3.any():
        out.update(_table3(maps[t3], seg[t3], truth[t3], settings, rng))
    certainty = segu_certainty(maps, seg, k)
    scores = {**certainty, "probability": probs_pair}
    scores["probability+c_iou"] = combined_score(correct, probs_pair, certainty["c_iou"],
                                                 seed=settings.seed)
    summary = certainty_summary(correct, scores, n_boot, settings.seed)
    out["c_iou"] = {s: summary["c_iou"][s] for s in ("correct", "incorrect")}
    out["c_auitc"] = {s: summary["c_auitc"][s] for s in ("correct", "incorrect")}
    out["certainty_auroc"] = {name: summary[name]["auroc"] for name in scores}
    out["risk_coverage"] = {name: summary[name]["risk_coverage"] for name in
                            ("c_iou", "c_auitc", "probability")}
    out["n_correct"], out["n_incorrect"] = summary["n_correct"], summary["n_incorrect"]
    return out


def _mean(values) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def run_segx(config: StudyConfig, settings: SegxSettings = SegxSettings(), out_dir="runs", *,
             verbose: int = 1, render: bool = True) -> dict:
    config = copy.deepcopy(config)
    run_root = Path(out_dir) / config.name
    run_root.mkdir(parents=True, exist_ok=True)
    (run_root / "config.json").write_text(json.dumps(
        {**config.to_dict(), "segx": dataclasses.asdict(settings)}, indent=2))
    warnings: list[str] = []
    t0 = time.perf_counter()
    data = load_data(config, warnings)
    split = "test_decorrelated" if "test_decorrelated" in data else "test"
    test, val, train = data[split], data["val"], data["train"]
    report: dict = {"config": config.to_dict(), "warnings": warnings, "smoke": config.smoke,
                    "class_names": list(train.class_names), "data": data_summary(data),
                    "timing": {"data_seconds": time.perf_counter() - t0}}
    section: dict = {"settings": dataclasses.asdict(settings), "eval_split": split,
                     "explainers": list(EXPLAINERS), "models": {}}
    # 1. the segmenter: its own variant, trained through the generic loop
    seg_variant = next((v for v in config.variants if v.method == "segmenter"), None)
    if seg_variant is None:
        raise ValueError("the SegX study needs a variant with method 'segmenter' (see "
                         "presets/segx.py)")
    seg_method = get_method("segmenter")
    seg_options = seg_method.make_config({"region": settings.region, **seg_variant.options})
    if verbose:
        print(f"== {config.name}/{seg_variant.name}: U-Net segmenter of the {seg_options.region}")
    segmenter, history, seconds = train_variant(
        config, seg_method, seg_options, data, {"mask": region_of(train, seg_options.region)},
        run_root / seg_variant.name, warnings, verbose)
    x_seg = np.asarray(get_preprocessor(seg_method.preprocessor)(test.images))
    seg = _predictor(segmenter)(x_seg)[..., 0] > 0.5
    region = region_of(test, seg_options.region)
    section["segmenter"] = {"variant": seg_variant.name, "region": seg_options.region,
                            "test": dice_iou(seg, region), "seconds": seconds,
                            "epochs": len(history), "distribute": recorded(config.train),
                            "stopped_early": bool(history and history[-1].get("stopped_early")),
                            "history": history, "options": dataclasses.asdict(seg_options)}
    truth_all = class_masks(test)
    sets_test, sets_val = test.label_matrix(), val.label_matrix()
    saved: dict = {"images": test.images, "segmentation": seg, "region": region,
                   "ground_truth": truth_all.any(1)}
    rng = np.random.default_rng(settings.seed)
    eg_images = np.sort(rng.choice(len(test), min(settings.eg_images, len(test)), replace=False))
    # 2. the classifiers
    for variant in config.variants:
        if variant.method == "segmenter":
            continue
        method = get_method(variant.method)
        options = method.make_config(variant.options)
        if verbose:
            print(f"== {config.name}/{variant.name}: method {method.name}")
        model, history, seconds = train_variant(config, method, options, data, {},
                                                run_root / variant.name, warnings, verbose)
        preprocess = get_preprocessor(method.preprocessor_for(options))
        x_val, x_test = np.asarray(preprocess(val.images)), np.asarray(preprocess(test.images))
        predict = _predictor(model)
        p_val, p_test = predict(x_val), predict(x_test)
        if p_test.shape[1] != train.num_classes:
            raise ValueError(f"{variant.name}: SegX needs one sigmoid per class (method "
                             f"multilabel); got {p_test.shape[1]} outputs")
        rule = getattr(options, "threshold_rule", "f1")
        tau = multilabel_thresholds(sets_val, p_val, rule, train.class_names, warnings)
        entry = {"method": method.name, "options": dataclasses.asdict(options),
                 "training": {"history": history, "seconds": seconds,
                              "distribute": recorded(method.train_config(config, options))},
                 "threshold_rule": rule,
                 "classification": multilabel_metrics(sets_test, p_test, tau, train.class_names,
                                                      settings.n_resamples, settings.seed),
                 "explainers": {}}
        pairs = predicted_pairs(p_test, tau)
        entry["n_pairs"] = int(len(pairs))
        background = x_val[np.sort(np.random.default_rng(settings.seed).choice(
            len(x_val), min(settings.background, len(x_val)), replace=False))]
        layer = method.layer_for(config, options)
        last = last_conv_layer(model)
        layers = {"gradcam": layer, "expected_gradients": None}
        if last != layer:
            layers[LAST] = last
        entry["layers"] = {k: v for k, v in layers.items() if v}
        for explainer, layer in layers.items():
            use = pairs if explainer != "expected_gradients" else \
                pairs[np.isin(pairs[:, 0], eg_images)]
            if verbose:
                print(f"   {explainer}: {len(use)} predicted-positive pairs")
            t1 = time.perf_counter()
            maps = _maps(explainer, model, x_test[use[:, 0]], use[:, 1], layer, background,
                         settings, verbose)
            maps_seconds = time.perf_counter() - t1
            img, cls = use[:, 0], use[:, 1]
            truth = truth_all[img, cls]
            correct = sets_test[img, cls].astype(bool)
            if len(use):
                cell = _cell(maps, seg[img], truth, truth.reshape(len(use), -1).any(1), correct,
                             p_test[img, cls], settings, np.random.default_rng(settings.seed))
            else:
                cell = {"n_pairs": 0, "n_table3": 0}
                warnings.append(f"{variant.name}/{explainer}: no predicted-positive pairs")
            cell["seconds"] = maps_seconds
            entry["explainers"][explainer] = cell
            saved[f"{variant.name}/{explainer}/maps"] = maps.astype(np.float16)
            saved[f"{variant.name}/{explainer}/pairs"] = use
        section["models"][variant.name] = entry
    np.savez_compressed(run_root / "segx_maps.npz", **saved)
    report["segx"] = section
    return finish(report, run_root, warnings, t0, render)
