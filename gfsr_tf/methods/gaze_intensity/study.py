"""Pham et al.'s study as resumable rows (`presets.gaze_intensity`, `experiments/gaze_intensity.py`):
prompted gaze-intensity predictors, classifiers on gated images, and the comparators (CAMs of a
full-image classifier, the gaze U-Net), each trained by the generic loop through
`study.run.train_variant` and read back from <root>/<row>@seed<k>/result.json once finished.
Writes <root>/results.{json,md} (Tables 3-8 beside the paper's numbers), report.json
(`controllability`, per prompt and overall) and panels.png (input | GT | ours | comparators per
prompt)."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from ...config import BenchmarkConfig, ModelConfig, StudyConfig, TrainConfig
from .prompts import PROMPTS, SETTINGS, prompt_splits, setting
from ...metrics.classification import binary_metrics
from ...metrics.heatmaps import controllability, heatmap_metrics
from ..registry import get_method
from . import foreground_of
from .model import predict_maps
from ...preprocessing import get_preprocessor
from ...presets.gaze_unet import PAPER as UNET_PAPER
from ...report.io import write_json
from ...training.distribute import recorded
from ...study.rows import row_key, run_rows, write_results
from ...study.run import train_variant

# Pham et al., Tables 3-8 (REFLACX; IoUs x 100)
METRIC_KEYS = ("fg_iou", "bg_iou", "fw_iou", "ssim", "psnr", "l1", "l2")
PAPER_TABLE3 = {"ours": (37.27, 92.44, 86.96, 0.83, 18.26, 0.08, 0.02),
                "unet decoder": (39.59, 83.69, 79.26, 0.55, 13.77, 0.16, 0.05),
                "unet grad-cam": (6.68, 54.81, 49.97, 0.36, 9.62, 0.27, 0.12),
                "grad-cam": (18.91, 78.12, 71.49, 0.24, 10.40, 0.22, 0.11),
                "grad-cam++": (8.76, 79.85, 71.88, 0.20, 10.69, 0.20, 0.09),
                "relevance-cam (not rebuilt)": (15.49, 40.00, 37.25, 0.10, 5.64, 0.50, 0.29),
                "integrated grad-cam (not rebuilt)": (12.27, 82.44, 74.58, 0.37, 12.48, 0.17,
                                                      0.07),
                "transunet (not rebuilt)": (33.68, 90.13, 84.54, 0.83, 12.79, 0.09, 0.06)}
PAPER_TABLE4 = {"clf-full": 71.64, "unet": 75.12, "transunet (not rebuilt)": 74.88,
                "clf-pred": 76.86}
PAPER_TABLE5 = {"C": (87.42, 0.84, 18.80, 0.07), "L": (86.51, 0.85, 18.76, 0.08),
                "R": (87.16, 0.82, 17.48, 0.10), "M": (86.96, 0.83, 18.26, 0.08)}
PAPER_TABLE6 = {"l2-only": (4.06, 81.80, 16.62, 0.03), "ce-dice": (38.16, 85.04, 13.11, 0.04),
                "ours": (37.27, 86.96, 18.26, 0.02)}
PAPER_TABLE7 = {"no-alpha": (62.87, 0.31, 12.59, 0.17), "ours": (86.96, 0.83, 18.26, 0.08)}
PAPER_TABLE8 = {("C", "clf-gt"): (21.49, 83.33), ("C", "clf-pred"): (43.31, 80.30),
                ("L", "clf-gt"): (16.43, 81.37), ("L", "clf-pred"): (43.14, 74.48),
                ("R", "clf-gt"): (18.18, 80.00), ("R", "clf-pred"): (43.95, 75.20),
                ("M", "clf-gt"): (18.18, 81.34), ("M", "clf-pred"): (43.49, 76.86)}
# row -> (setting trained on, gaze_intensity options over the study's)
PREDICTOR_ROWS = {"ours": ("M", {}), "ours-C": ("C", {}), "ours-L": ("L", {}),
                  "ours-R": ("R", {}), "l2-only": ("M", {"ce_weight": 0.0, "dice_weight": 0.0}),
                  "ce-dice": ("M", {"l2_weight": 0.0}), "no-alpha": ("M", {"use_alpha": False})}
CLASSIFIER_ROWS = {"clf-pred": "predicted", "clf-gt": "ground_truth", "clf-full": "full"}
# the comparison first, the ablations after it (a run cut short still has the main tables)
ROWS = ("ours", "clf-pred", "clf-gt", "clf-full", "unet", "no-alpha", "l2-only", "ce-dice",
        "ours-C", "ours-L", "ours-R")
PANELS = 3                      # test images per prompt in panels.png
SUBSETS = ("C", "L", "R")


# ------------------------------------------------------------------------------------- data
def load_prompt_data(cfg, warnings: list) -> dict:
    """{"images": the loader's {train, val, test} images, "samples": balanced M samples per
    split, "counts": dropped samples, "labels": simulation | weak}."""
    if cfg.data_dir:
        from ...datasets.egd_cxr import load_egd_cxr
        images = load_egd_cxr(cfg.data_dir, cfg.image_size, sigma_px=150.0, weighting="count",
                              val_fraction=0.15, test_fraction=0.15, seed=0)
        sigma, labels = 150.0, "weak"
        warnings.append("EGD-CXR finding labels are weak: read from the matched sentence "
                        "(positive unless it carries a negation cue)")
    else:
        from ...datasets.gaze_sim import make_gaze_simulation, scaled_sigma
        bench = BenchmarkConfig(image_size=cfg.image_size, n_train=cfg.n_train, n_val=cfg.n_val,
                                n_test=cfg.n_test, seed=0)   # the data stay fixed over seeds
        images = make_gaze_simulation(bench, weighting="count")
        sigma, labels = scaled_sigma(150.0, cfg.image_size), "simulation"
    counts: dict = {}
    samples = prompt_splits(images, labels=labels, seed=0, counts=counts, sigma_px=sigma,
                            weighting="count")
    return {"images": images, "samples": samples, "counts": counts, "labels": labels}


def gate(images: np.ndarray, maps: np.ndarray, masking: str = "gated") -> np.ndarray:
    """x * a * [a > 0.5] ("gated") or x * a ("soft") on raw pixels -> uint8 like the images."""
    maps = np.asarray(maps, np.float32)
    if masking == "gated":
        maps = maps * (maps > 0.5)
    elif masking != "soft":
        raise ValueError(f"masking must be gated or soft, got {masking!r}")
    return np.round(images.astype(np.float32) * maps[..., None]).astype(np.uint8)


# --------------------------------------------------------------------------------- training
def _study(cfg, name: str, **train) -> StudyConfig:
    c = StudyConfig(name=name, dataset="gaze_simulation", data_dir=cfg.data_dir)
    c.benchmark = BenchmarkConfig(image_size=cfg.image_size, n_train=cfg.n_train,
                                  n_val=cfg.n_val, n_test=cfg.n_test, seed=0)
    c.model = ModelConfig(backbone=cfg.classifier_backbone, weights=cfg.weights)
    c.train = TrainConfig(**{"batch_size": cfg.batch_size, "seed": cfg.seed, **cfg.distribute,
                             **train})
    return c


def _train(cfg, run_dir: Path, method_name: str, options: dict, data: dict, targets: dict,
           warnings: list, verbose: int, **train):
    study = _study(cfg, run_dir.name, **train)
    method = get_method(method_name)
    parsed = method.make_config(options)
    model, history, seconds = train_variant(study, method, parsed, data, targets, run_dir,
                                            warnings, verbose)
    return model, method, parsed, {"train_seconds": seconds, "epochs": len(history),
                                   "distribute": recorded(study.train)}


def _predictor(cfg, run_dir, options, data, warnings, verbose):
    targets = {"intensity": data["train"].gaze,
               "foreground": foreground_of(data["train"].gaze,
                                           options.get("binarise", "levels"))}
    return _train(cfg, run_dir, "gaze_intensity", options, data, targets, warnings, verbose,
                  epochs=cfg.predictor_epochs, learning_rate=cfg.learning_rate,
                  optimizer="adamw", weight_decay=cfg.weight_decay, monitor="val_loss")


def _classifier(cfg, run_dir, data, warnings, verbose):
    return _train(cfg, run_dir, "baseline", {}, data, {}, warnings, verbose,
                  epochs=cfg.classifier_epochs, learning_rate=cfg.learning_rate,
                  optimizer="adamw", weight_decay=cfg.weight_decay, monitor="val_auc")


def _probability(model, preprocess, images, batch_size=32) -> np.ndarray:
    """P(finding): the binary classifier's sigmoid, or a multi-sigmoid head's column 1."""
    p = np.concatenate([np.asarray(model(preprocess(images[i:i + batch_size]), training=False))
                        for i in range(0, len(images), batch_size)])
    return p[:, -1] if p.ndim == 2 else p


def _scores(labels, probs) -> dict:
    m = binary_metrics(labels, probs)
    return {"accuracy": m["accuracy"], "auc": m["auc"], "n": m["n"]}


def _in_setting(samples, name: str) -> np.ndarray:
    return np.isin(samples.prompts, [PROMPTS.index(r) for r in SETTINGS[name]])


# --------------------------------------------------------------------------------- the rows
def predictor_row(cfg, row: str, data: dict, run_dir: Path, warnings, verbose) -> dict:
    subset, extra = PREDICTOR_ROWS[row]
    options = {**cfg.predictor, **extra}
    splits = {k: setting(v, subset) for k, v in data["samples"].items()}
    model, method, parsed, timing = _predictor(cfg, run_dir, options, splits, warnings, verbose)
    preprocess = get_preprocessor(method.preprocessor)
    test = data["samples"]["test"]
    maps = predict_maps(model, np.asarray(preprocess(test.images)), test.prompts)
    metrics = {}
    for name in (SETTINGS if subset == "M" else (subset,)):
        pick = _in_setting(test, name)
        metrics[name] = heatmap_metrics(np.clip(maps[pick], 0, 1), test.gaze[pick])
    out = {"setting": subset, "options": dataclasses.asdict(parsed), "metrics": metrics,
           "encoder_pretrained": bool(getattr(model, "encoder_pretrained", False)), **timing}
    if subset == "M":
        base = data["images"]["test"]
        out["controllability"] = controllability(
            {r: predict_maps(model, np.asarray(preprocess(base.images)), p)
             for p, r in enumerate(PROMPTS)}, base.regions["heart"])
    np.savez_compressed(run_dir / "panels.npz", **_panel_maps(test, maps))
    return out


def _panel_maps(test, maps) -> dict:
    """The first PANELS test samples of each prompt: their maps, keyed by prompt."""
    return {r: maps[np.flatnonzero(test.prompts == p)[:PANELS]] for p, r in enumerate(PROMPTS)}


def masked_classifier_row(cfg, row: str, data: dict, root: Path, run_dir: Path, warnings,
                          verbose, seed_tag: str) -> dict:
    """clf-pred / clf-gt: the classifier on M samples gated by the `ours` prediction (frozen)
    or by the ground-truth map; accuracy overall and per setting, and the area ratio."""
    samples = data["samples"]
    if row == "clf-pred":
        ours = root / f"ours{seed_tag}" / "best.keras"
        if not ours.exists():
            raise FileNotFoundError(f"clf-pred gates with the `ours` predictor: run the ours "
                                    f"row first ({ours} missing)")
        import keras
        predictor = keras.models.load_model(ours)
        preprocess = get_preprocessor(get_method("gaze_intensity").preprocessor)
        maps = {k: predict_maps(predictor, np.asarray(preprocess(v.images)), v.prompts)
                for k, v in samples.items()}
    else:
        maps = {k: v.gaze for k, v in samples.items()}
    # area ratio: [a > 0.5] of a prediction, [q > 0] of a ground-truth map (the paper's)
    threshold = 0.5 if row == "clf-pred" else 0.0
    gated = {k: dataclasses.replace(v, images=gate(v.images, maps[k], cfg.masking))
             for k, v in samples.items()}
    model, method, _, timing = _classifier(cfg, run_dir, gated, warnings, verbose)
    preprocess = get_preprocessor(method.preprocessor_for(method.make_config({})))
    test = gated["test"]
    probs = _probability(model, preprocess, test.images)
    per = {name: {**_scores(test.labels[pick], probs[pick]),
                  "area_ratio": float(np.mean(maps["test"][pick] > threshold))}
           for name in SETTINGS for pick in [_in_setting(test, name)]}
    return {"masking": cfg.masking, "source": "predicted" if row == "clf-pred" else
            "ground_truth", "area_ratio": float(np.mean(maps["test"] > threshold)),
            "scores": per, **timing}


def per_setting_row(cfg, row: str, data: dict, run_dir: Path, warnings, verbose) -> dict:
    """clf-full / unet: one model per setting C, L, R on full images (no prompt: the paper's
    comparators); accuracy and their maps against the setting's ground truth, averaged."""
    from ...saliency import explain_posthoc
    from ...evaluators.gaze import decoder_maps
    per, panels = {}, {}
    for subset in SUBSETS:
        splits = {k: setting(v, subset) for k, v in data["samples"].items()}
        sub_dir = run_dir / subset
        if row == "clf-full":
            model, method, parsed, timing = _classifier(cfg, sub_dir, splits, warnings, verbose)
        else:
            targets = {"mask": splits["train"].gaze}     # the decoder's target
            options = {"gamma": UNET_PAPER["unet"]["gamma"], "decoder": True}
            model, method, parsed, timing = _train(
                cfg, sub_dir, "gaze_unet", options, splits, targets, warnings, verbose,
                epochs=cfg.unet_epochs, learning_rate=UNET_PAPER["unet"]["learning_rate"],
                lr_schedule="triangular2", lr_step_epochs=5, clip_value=0.1,
                batch_size=max(cfg.batch_size, 16), monitor="val_auc")
        preprocess = get_preprocessor(method.preprocessor_for(parsed))
        test = splits["test"]
        x = np.asarray(preprocess(test.images))
        classifier = method.classifier_view(model)
        probs = _probability(classifier, preprocess, test.images)
        layer = method.layer_for(_study(cfg, sub_dir.name), parsed)
        maps = {"grad-cam": explain_posthoc(classifier, x, "gradcam", layer=layer).heatmaps}
        if row == "clf-full":
            maps["grad-cam++"] = explain_posthoc(classifier, x, "gradcam++",
                                                 layer=layer).heatmaps
        else:
            maps["decoder"] = decoder_maps(model, preprocess, test.images)
        per[subset] = {**_scores(test.labels, probs), **timing,
                       "maps": {k: heatmap_metrics(np.clip(m, 0, 1), test.gaze)
                                for k, m in maps.items()}}
        panels.update({f"{subset}/{k}": m[:PANELS] for k, m in maps.items()})
    np.savez_compressed(run_dir / "panels.npz", **panels)
    names = per["C"]["maps"]
    return {"per_setting": per,
            "accuracy": float(np.mean([per[s]["accuracy"] for s in SUBSETS])),
            "maps": {k: {m: float(np.mean([per[s]["maps"][k][m] for s in SUBSETS]))
                         for m in METRIC_KEYS} for k in names},
            "train_seconds": float(sum(per[s]["train_seconds"] for s in SUBSETS))}


def row_result(cfg, row: str, data: dict, root: Path, run_dir: Path, warnings: list,
               verbose: int = 1) -> dict:
    """One row (`study.rows.run_rows` reads it back from <root>/<row>@seed<k>/result.json once
    finished)."""
    tag = f"@seed{cfg.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if verbose:
        print(f"== gaze intensity row {row} (seed {cfg.seed})")
    if row in PREDICTOR_ROWS:
        result = predictor_row(cfg, row, data, run_dir, warnings, verbose)
    elif row in ("clf-pred", "clf-gt"):
        result = masked_classifier_row(cfg, row, data, root, run_dir, warnings, verbose, tag)
    elif row in CLASSIFIER_ROWS or row == "unet":
        result = per_setting_row(cfg, row, data, run_dir, warnings, verbose)
    else:
        raise ValueError(f"unknown gaze intensity row {row!r}")
    result.update({"row": row, "seed": cfg.seed, "seconds": time.perf_counter() - start,
                   "image_size": cfg.image_size})
    return result


def order_rows(rows) -> list[str]:
    """`clf-pred` needs `ours`: it runs first when asked for."""
    rows = list(dict.fromkeys(rows))
    if "clf-pred" in rows and "ours" not in rows:
        rows.insert(rows.index("clf-pred"), "ours")
    return rows


def run_gaze_intensity(cfg, rows, out_dir="runs", verbose: int = 1) -> dict:
    root = Path(out_dir) / cfg.name
    root.mkdir(parents=True, exist_ok=True)
    warnings: list = []
    t0 = time.perf_counter()
    data = load_prompt_data(cfg, warnings)
    ordered = order_rows(rows)
    results = dict(zip(ordered, run_rows(
        root, [(row_key(row, cfg.seed), lambda run_dir, row=row: row_result(
            cfg, row, data, root, run_dir, warnings, verbose)) for row in ordered],
        label="gaze intensity row", verbose=verbose)))
    report = {"config": cfg.to_dict(), "rows": results, "data": _data_summary(data),
              "warnings": list(dict.fromkeys(warnings)),
              "controllability": results.get("ours", {}).get("controllability"),
              "timing": {"total_seconds": time.perf_counter() - t0}}
    write_json(root / "report.json", report)
    text = markdown(report)
    write_results(root, results, text)
    plot_panels(root, data, cfg, root / "panels.png")
    return {"report": report, "markdown": text}


def _data_summary(data) -> dict:
    out = {"labels": data["labels"], "dropped": data["counts"]}
    for split, s in data["samples"].items():
        out[split] = {name: {"samples": int(pick.sum()),
                             "positives": int(s.labels[pick].sum())}
                      for name in SETTINGS for pick in [_in_setting(s, name)]}
    return out


# ------------------------------------------------------------------------------------ report
def _f(v, scale=1.0, digits=2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else \
        f"{v * scale:.{digits}f}"


def _metric_cells(m: dict) -> list[str]:
    return [_f(m["fg_iou"], 100), _f(m["bg_iou"], 100), _f(m["fw_iou"], 100), _f(m["ssim"]),
            _f(m["psnr"]), _f(m["l1"]), _f(m["l2"])]


def markdown(report: dict) -> str:
    rows, cfg = report["rows"], report["config"]
    lines = [f"# Gaze-intensity heatmaps (Pham et al.) — seed {cfg['seed']}, "
             f"{cfg['image_size']} px, {'EGD-CXR' if cfg['data_dir'] else 'embedded simulation'}"
             + (" — SMOKE RUN (tiny sizes, for tests; the numbers mean nothing)"
                if cfg.get("smoke") else ""),
             "", "Substitutes: BiomedCLIP cannot be obtained here - the encoder is "
             "EfficientNet-B0 (random initialisation, trainable, unless ImageNet weights load) and "
             "the text encoder is `Embedding(3, 512)` over the prompt id. Paper numbers: REFLACX "
             "with BiomedCLIP; not comparable in level, only in direction.", ""]
    ctrl = report.get("controllability")
    if ctrl:
        lines += ["## Controllability (goal: >= 90 % per prompt)", "",
                  "| prompt | share of test images | rule |", "|---|---|---|"]
        lines += [f"| {r} | {_f(v['share'], 100, 1)} % ({v['hits']}/{v['n']}) | {v['rule']} |"
                  for r, v in ctrl["per_prompt"].items()]
        lines += [f"| overall | {_f(ctrl['overall'], 100, 1)} % | goal met: "
                  f"{'yes' if ctrl['met'] else 'no'} |", ""]
    head = "| fgIoU | bgIoU | fwIoU | mSSIM | mPSNR | mL1 | mL2 |"
    lines += ["## Table 3 — heatmaps against the ground truth (test; comparators averaged over "
              "C, L, R)", "", f"| method | ours / paper {head}", "|---|---|" + "---|" * 7]
    ours = rows.get("ours", {}).get("metrics", {}).get("M")
    cands = [("ours", ours)]
    for row, key, label in (("unet", "decoder", "unet decoder"), ("unet", "grad-cam",
                                                                   "unet grad-cam"),
                            ("clf-full", "grad-cam", "grad-cam"),
                            ("clf-full", "grad-cam++", "grad-cam++")):
        cands.append((label, rows.get(row, {}).get("maps", {}).get(key)))
    for label, m in cands:
        if m is not None:
            lines.append(f"| {label} | ours | " + " | ".join(_metric_cells(m)) + " |")
        paper = PAPER_TABLE3.get(label)
        if paper:
            lines.append(f"| {label} | paper | " + " | ".join(str(v) for v in paper) + " |")
    for label in ("relevance-cam (not rebuilt)", "integrated grad-cam (not rebuilt)",
                  "transunet (not rebuilt)"):
        lines.append(f"| {label} | paper | " + " | ".join(str(v) for v in PAPER_TABLE3[label])
                     + " |")
    lines += ["", "## Table 4 — accuracy (%) on the test samples", "",
              "| model | ours | AUC | paper |", "|---|---|---|---|"]
    for row, label in (("clf-full", "clf-full (full image; per setting, averaged)"),
                       ("unet", "unet (per setting, averaged)"),
                       ("clf-pred", "clf-pred (gated by ours, M)"),
                       ("clf-gt", "clf-gt (gated by ground truth, M)")):
        r = rows.get(row)
        if r is None:
            continue
        if "scores" in r:
            acc, auc = r["scores"]["M"]["accuracy"], r["scores"]["M"]["auc"]
        else:
            acc = r["accuracy"]
            auc = float(np.mean([r["per_setting"][s]["auc"] for s in SUBSETS]))
        lines.append(f"| {label} | {_f(acc, 100)} | {_f(auc, 1, 3)} | "
                     f"{PAPER_TABLE4.get(row, '–')} |")
    lines += ["", "## Table 5 — the predictor per setting (fwIoU, mSSIM, mPSNR, mL1)", "",
              "| setting | M model on the subset | trained on the subset | paper |",
              "|---|---|---|---|"]
    for s in SETTINGS:
        m = (ours or {}) and rows["ours"]["metrics"].get(s)
        own = rows.get(f"ours-{s}", {}).get("metrics", {}).get(s) if s != "M" else m
        cell = lambda x: "–" if not x else \
            f"{_f(x['fw_iou'], 100)}, {_f(x['ssim'])}, {_f(x['psnr'])}, {_f(x['l1'])}"
        lines.append(f"| {s} | {cell(m)} | {cell(own)} | "
                     f"{', '.join(str(v) for v in PAPER_TABLE5[s])} |")
    lines += ["", "## Table 6 — losses (fgIoU, fwIoU, mPSNR, mL2; setting M)", "",
              "| losses | ours | paper |", "|---|---|---|"]
    for row in ("l2-only", "ce-dice", "ours"):
        m = rows.get(row, {}).get("metrics", {}).get("M")
        got = "–" if not m else \
            f"{_f(m['fg_iou'], 100)}, {_f(m['fw_iou'], 100)}, {_f(m['psnr'])}, {_f(m['l2'])}"
        lines.append(f"| {row} | {got} | {', '.join(str(v) for v in PAPER_TABLE6[row])} |")
    lines += ["", "## Table 7 — the scaling vector alpha (fwIoU, mSSIM, mPSNR, mL1; M)", "",
              "| model | ours | paper |", "|---|---|---|"]
    for row in ("no-alpha", "ours"):
        m = rows.get(row, {}).get("metrics", {}).get("M")
        got = "–" if not m else \
            f"{_f(m['fw_iou'], 100)}, {_f(m['ssim'])}, {_f(m['psnr'])}, {_f(m['l1'])}"
        lines.append(f"| {row} | {got} | {', '.join(str(v) for v in PAPER_TABLE7[row])} |")
    lines += ["", "## Table 8 — classifier on gated images: area ratio (%) and accuracy (%)",
              "", "Area ratio: mean [a > 0.5] of the prediction, mean [q > 0] of the ground "
              "truth (the paper's definition). Per-setting rows are the M classifier on that "
              "setting's test samples.", "",
              "| setting | heatmap | area ours | accuracy ours | AUC ours | paper (area, acc) |",
              "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        for row in ("clf-gt", "clf-pred"):
            r = rows.get(row)
            if r is None:
                continue
            v = r["scores"][s]
            lines.append(f"| {s} | {row} | {_f(v['area_ratio'], 100, 1)} | "
                         f"{_f(v['accuracy'], 100)} | {_f(v['auc'], 1, 3)} | "
                         f"{', '.join(str(x) for x in PAPER_TABLE8[(s, row)])} |")
    lines += ["", "## Time", "", "| row | seconds | training seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v['seconds']:.0f} | {v.get('train_seconds', 0):.0f} |"
              for k, v in rows.items()]
    total = report["timing"]["total_seconds"]
    lines += ["", f"This invocation: {total:.0f} s (rows read back from result.json cost ~0).",
              "", f"Data: {json.dumps(report['data'])}"]
    if report["warnings"]:
        lines += ["", "Warnings:"] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def plot_panels(root: Path, data: dict, cfg, out: Path) -> Path | None:
    """Rows: prompts x first PANELS test samples; columns: input | ground truth | ours |
    comparators of that prompt's setting (clf-full Grad-CAM, Grad-CAM++, U-Net decoder)."""
    from ...report.basics import add_colorbar, pyplot, save_figure, wrap_title
    tag = f"@seed{cfg.seed}"
    ours_path = root / f"ours{tag}" / "panels.npz"
    if not ours_path.exists():
        return None
    ours = np.load(ours_path)
    comps = {}
    for row in ("clf-full", "unet"):
        p = root / f"{row}{tag}" / "panels.npz"
        if p.exists():
            comps.update({f"{row} {k.split('/')[1]}|{k.split('/')[0]}": v
                          for k, v in np.load(p).items()})
    test = data["samples"]["test"]
    subset_of = {"heart": "C", "left_lung": "L", "right_lung": "R"}
    names = sorted({k.split("|")[0] for k in comps})
    plt = pyplot()
    rows = [(p, r, j) for p, r in enumerate(PROMPTS)
            for j in range(min(PANELS, len(ours[r])))]
    cols = 3 + len(names)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.7 * cols, 1.7 * len(rows)),
                             squeeze=False)
    for i, (p, region, j) in enumerate(rows):
        k = np.flatnonzero(test.prompts == p)[j]
        panels = [("input", test.images[k, ..., 0], "gray"), ("ground truth", test.gaze[k], None),
                  ("ours", ours[region][j], None)]
        for name in names:
            m = comps.get(f"{name}|{subset_of[region]}")
            panels.append((name, m[j] if m is not None and j < len(m) else None, None))
        for c, (title, img, cmap) in enumerate(panels):
            ax = axes[i, c]
            ax.axis("off")
            if img is not None:
                ax.imshow(img, cmap=cmap or "inferno", vmin=0, vmax=255 if cmap else 1)
            if i == 0:
                ax.set_title(wrap_title(title, 16), fontsize=7)
        axes[i, 0].text(-2, test.images.shape[1] / 2, region.replace("_", " "), fontsize=7,
                        rotation=90, ha="right", va="center")
    add_colorbar(fig, axes[:, 1:], "inferno", 0, 1, "gaze intensity, normalised (0-1)")
    return out if save_figure(fig, out) else None
