"""The eye-gaze U-Net study as resumable rows (`experiments/gaze_unet.py`): every (row, seed) is
one study run (`presets.gaze_unet`), read back from <root>/<row>@seed<k>/result.json when it
has finished. Writes <root>/results.{json,md} and figures: the paper's Table 1 layout (median
and 2.5/97.5 percentiles of 30 resamples of 55-60 test images, beside the paper's numbers, and
the standard bootstrap), paired per-class differences unet - no_seg on the same test images,
decoder / Grad-CAM / constant-map heatmap metrics against the gaze, the decoder against the
generator maps, panels input | Grad-CAM | gaze | M | decoder, and seconds per row."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ...metrics.auc_tables import auc_table, format_auc
from ...report.basics import add_colorbar, save_figure, wrap_title
from ...study.rows import run_rows, write_results
from ...study.run import run_study

# Watanabe et al. 2022, Table 1 (EGD-CXR test set; medians and 2.5/97.5 percentiles of 30
# resamples of 55-60 images)
PAPER_TABLE1 = {
    "unet": {"average": (0.872, 0.840, 0.897), "normal": (0.923, 0.895, 0.945),
             "congestive heart failure": (0.916, 0.871, 0.938), "pneumonia": (0.781, 0.713, 0.851)},
    "no_seg": {"average": (0.873, 0.838, 0.908), "normal": (0.878, 0.836, 0.918),
               "congestive heart failure": (0.934, 0.898, 0.975),
               "pneumonia": (0.805, 0.763, 0.886)},
}
# Watanabe et al. 2022, Tables 2-4 (average, normal, CHF, pneumonia AUC)
PAPER_SETS = {"set1-gbp": (0.891, 0.896, 0.946, 0.831), "set1-deconvnet": (0.884, 0.916, 0.935, 0.806),
              "set2-gbp": (0.897, 0.907, 0.922, 0.850), "set2-deconvnet": (0.881, 0.885, 0.922, 0.827),
              "set3-gbp": (0.913, 0.921, 0.962, 0.859), "set3-deconvnet": (0.860, 0.907, 0.934, 0.741),
              "unet": (0.872, 0.923, 0.916, 0.781)}
PANELS = 6


def row_result(config, root: Path, verbose: int) -> dict:
    """Run one model set's study (into <root>/<config.name>/) and summarise it."""
    start = time.perf_counter()
    report = run_study(config, root, verbose=verbose, render=False)
    seconds = time.perf_counter() - start
    section = report["model"]
    test = "test"                  # the gaze data's test split (EGD-CXR and the simulation)
    probs = np.asarray(section["predictions"][test])
    labels = np.asarray(report["data"][test]["labels"])
    names = report["class_names"]
    result = {"name": config.name, "seed": config.train.seed,
              "options": section["training"]["options"], "class_names": names,
              "train_seconds": section["training"]["seconds"], "seconds": seconds,
              "distribute": section["training"]["distribute"],
              "epochs": config.train.epochs, "image_size": config.benchmark.image_size,
              "warnings": report["warnings"], "labels": labels.tolist(),
              "probabilities": probs.round(6).tolist(),
              "auc_paper": auc_table(labels, probs, class_names=names, protocol="paper",
                                     seed=config.train.seed),
              "auc_standard": auc_table(labels, probs, class_names=names, seed=config.train.seed),
              "gaze": section.get("gaze", {}).get("metrics", {}),
              "decoder_vs_maps": section.get("gaze", {}).get("decoder_vs_maps", {})}
    _save_panels(root / config.name, test)
    return result


def _save_panels(run_dir: Path, split: str) -> None:
    """The first test images' maps (Grad-CAM, decoder) beside the data, for the panel figure."""
    maps = np.load(run_dir / "model" / "explanations.npz")
    named = ("decoder", "guided_backprop", "deconvnet")
    keep = {k.split("/")[-1] if k.split("/")[-1] in named else "gradcam": maps[k][:PANELS]
            for k in maps.files if k.startswith(f"{split}/")}
    np.savez_compressed(run_dir / "panels.npz", **keep)


def run_gaze_rows(configs: list, out_dir="runs", name: str = "gaze_unet",
                  verbose: int = 1) -> dict:
    root = Path(out_dir) / name
    results = run_rows(root, [(c.name, lambda _, c=c: row_result(c, root, verbose))
                              for c in configs], label="gaze rows", verbose=verbose)
    table = markdown(results)
    write_results(root, results, table)
    return {"results": results, "markdown": table}


def _row(result: dict) -> str:
    return result["name"].partition("@")[0]


def markdown(results: list[dict]) -> str:
    if not results:
        return ""
    names = results[0]["class_names"]
    cols = ["average", *names]
    lines = ["### Table 1 layout: per-class AUC, median (2.5th, 97.5th percentile) of 30 "
             "resamples of 55-60 test images", "",
             "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row, paper in PAPER_TABLE1.items():
        cells = [("%.3f (%.3f, %.3f)" % paper[c]) if c in paper else "–" for c in cols]
        lines.append(f"| paper: {row} (EGD-CXR, 224 px, ImageNet) | " + " | ".join(cells) + " |")
    for r in results:
        lines.append(f"| {r['name']} | " + " | ".join(format_auc(r["auc_paper"][c])
                                                     for c in cols) + " |")
    lines += ["", "Standard bootstrap (estimate on the whole test split, 95 % CI of 1000 "
              "resamples):", "", "| model | " + " | ".join(cols) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for r in results:
        lines.append(f"| {r['name']} | " + " | ".join(format_auc(r["auc_standard"][c])
                                                     for c in cols) + " |")
    if any(_row(r) in PAPER_SETS and _row(r) != "unet" for r in results):
        lines += ["", "### Tables 2-4 layout (Watanabe et al.'s model sets): the paper's AUCs "
                  "(EGD-CXR) beside ours (paper protocol medians)", "",
                  "| row | paper: average, normal, CHF, pneumonia | ours: " + ", ".join(cols)
                  + " |", "|---|---|---|"]
        for r in results:
            paper = PAPER_SETS.get(_row(r))
            lines.append(f"| {r['name']} | " + (", ".join(f"{v:.3f}" for v in paper) if paper
                                                else "–") + " | " + ", ".join(
                f"{r['auc_paper'][c]['estimate']:.3f}" for c in cols) + " |")
    paired = _paired(results, names)
    if paired:
        lines += ["", "Paired per-class AUC differences on the same test images, unet - no_seg "
                  "and every model set - unet (standard bootstrap, 1000 resamples; p two-sided; "
                  "not comparable with the paper's p-values, whose method is unstated):", "",
                  "| comparison | seed | " + " | ".join(cols) + " |",
                  "|---|---" + "|---" * len(cols) + "|"] + paired
    gaze = [r for r in results if r["gaze"]]
    if gaze:
        lines += ["", "Maps against the gaze heatmaps (test split; IoUs x 100 as the papers "
                  "print them):", "", "| model | map | fg IoU | bg IoU | fw IoU | SSIM | PSNR | "
                  "L1 | L2 |", "|---|---|---|---|---|---|---|---|---|"]
        for r in gaze:
            for kind, m in r["gaze"].items():
                lines.append(f"| {r['name']} | {kind} | {100 * m['fg_iou']:.1f} | "
                             f"{100 * m['bg_iou']:.1f} | {100 * m['fw_iou']:.1f} | "
                             f"{m['ssim']:.3f} | {m['psnr']:.2f} | {m['l1']:.4f} | "
                             f"{m['l2']:.4f} |")
    mimic = [r for r in results if r.get("decoder_vs_maps")]
    if mimic:
        lines += ["", "The decoder against the generator maps M (what set 2 trains it to "
                  "imitate; compare with its row above against the gaze):", "",
                  "| model | decoder vs | fw IoU | SSIM | L1 |", "|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {kind.split(' vs ')[-1]} | {100 * m['fw_iou']:.1f} | "
                  f"{m['ssim']:.3f} | {m['l1']:.4f} |"
                  for r in mimic for kind, m in r["decoder_vs_maps"].items()]
    lines += ["", "| model | image px | epochs | train s | step cost vs unet (same seed) | "
              "row s (incl. evaluation) |", "|---|---|---|---|---|---|"]
    by = {(_row(r), r["seed"]): r for r in results}
    for r in results:
        unet = by.get(("unet", r["seed"]))
        ratio = (r["train_seconds"] / r["epochs"]) / (unet["train_seconds"] / unet["epochs"]) \
            if unet and unet["train_seconds"] else math.nan
        lines.append(f"| {r['name']} | {r['image_size']} | {r['epochs']} | "
                     f"{r['train_seconds']:.0f} | {ratio:.2f}x | {r['seconds']:.0f} |")
    total = sum(r["seconds"] for r in results)
    lines.append(f"\nAll rows: {total / 60:.1f} min (rows read back from disk count their "
                 "original time).")
    return "\n".join(lines)


def _paired(results: list[dict], names) -> list[str]:
    by = {(_row(r), r["seed"]): r for r in results}
    lines = []
    for (row, seed), r in sorted(by.items()):
        against = "no_seg" if row == "unet" else "unet"
        other = by.get((against, seed))
        if row == "no_seg" or other is None or other["labels"] != r["labels"]:
            continue
        table = auc_table(r["labels"], r["probabilities"], other["probabilities"],
                          class_names=names, seed=seed)["difference"]
        cells = [f"{table[c]['estimate']:+.3f} ({table[c]['ci_low']:+.3f}, "
                 f"{table[c]['ci_high']:+.3f}); p={table[c]['p_value']:.2f}"
                 if math.isfinite(table[c]["estimate"]) else "–"
                 for c in ["average", *names]]
        lines.append(f"| {row} - {against} | {seed} | " + " | ".join(cells) + " |")
    return lines


def plot_panels(root: Path, data, out: Path, row: str = "unet@seed0") -> Path | None:
    """input | Grad-CAM | gaze | M | decoder for the first test images of `row` (Watanabe et
    al.'s Figures 9-11 layout; M is the row's own generator: DeconvNet for a deconvnet row,
    guided backprop otherwise)."""
    path = Path(root) / row / "panels.npz"
    if not path.exists():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    maps = np.load(path)
    n = len(maps["gradcam"])
    columns = [("input", data.images[:n, ..., 0], "gray"), ("Grad-CAM", maps["gradcam"], "jet"),
               ("gaze", data.gaze[:n], "jet")]
    rule = "deconvnet" if "deconvnet" in row else "guided_backprop"
    if rule in maps.files:
        columns.append((f"M: {rule.replace('_', ' ')}", maps[rule], "jet"))
    if "decoder" in maps.files:
        columns.append(("decoder", maps["decoder"], "jet"))
    fig, axes = plt.subplots(n, len(columns), figsize=(2 * len(columns), 2 * n), squeeze=False)
    for i in range(n):
        for j, (title, images, cmap) in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(images[i], cmap=cmap, vmin=0, vmax=255 if title == "input" else 1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(wrap_title(title, 18))
            if j == 0:
                ax.set_ylabel(wrap_title(data.class_names[data.labels[i]], 16), fontsize=8)
    add_colorbar(fig, axes[:, 1:], "jet", 0, 1, "map, normalised per image (0-1)")
    save_figure(fig, out)
    return out


def plot_aucs(results: list[dict], out: Path) -> Path:
    """Per-class AUC (paper protocol medians with percentile bars) per row and seed, beside the
    paper's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = ["average", *results[0]["class_names"]]
    entries = [(f"paper {k}", {c: dict(zip(("estimate", "ci_low", "ci_high"), v[c]))
                               for c in cols if c in v}) for k, v in PAPER_TABLE1.items()]
    entries += [(r["name"], r["auc_paper"]) for r in results]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cols) + 0.4 * len(entries)), 4))
    width = 0.8 / len(entries)
    for i, (label, table) in enumerate(entries):
        est = np.array([table.get(c, {}).get("estimate", np.nan) for c in cols])
        lo = np.array([table.get(c, {}).get("ci_low", np.nan) for c in cols])
        hi = np.array([table.get(c, {}).get("ci_high", np.nan) for c in cols])
        x = np.arange(len(cols)) + (i - len(entries) / 2 + 0.5) * width
        ax.bar(x, est, width, label=label, alpha=0.5 if label.startswith("paper") else 0.9)
        ax.errorbar(x, est, [est - lo, hi - est], fmt="none", ecolor="k", lw=0.8)
    ax.set_xticks(np.arange(len(cols)), [wrap_title(c, 18) for c in cols])
    ax.set_ylim(0.3, 1.0)
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    ax.set_ylabel("AUC")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("Gaze U-Net vs classification-only: per-class AUC")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
