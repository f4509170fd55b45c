"""SegX / SegU's report section (top layer: the report renders it from report.json alone):
its markdown tables and its figures (segmentation overlays, risk-coverage curves)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...report.basics import ci, fmt, pyplot, save_figure, wrap_title


def signed_ci(c: dict) -> str:
    return f"{c['estimate']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" \
        if c and c.get("estimate") is not None else "–"


def explainer_name(model: dict, explainer: str) -> str:
    layer = model.get("layers", {}).get(explainer)
    return f"{explainer} (`{layer}`)" if layer else explainer


def segx_markdown(report: dict) -> list[str]:
    s = report["segx"]
    seg = s["segmenter"]
    lines = ["", f"## Segmenter (U-Net, {seg['region']})", "",
             f"Evaluation split `{s['eval_split']}`: Dice {fmt(seg['test']['dice'])}, IoU "
             f"{fmt(seg['test']['iou'])} at p > 0.5 over {seg['test']['n']} images; trained "
             f"{seg['epochs']} epochs" + (" (stopped early)" if seg.get("stopped_early") else "")
             + f" in {seg['seconds']:.0f} s."]
    lines += ["", "## Classification (per-class thresholds on validation; 95% bootstrap CI)", "",
              "| model | class | τ | AUROC | AUPRC | F1 | sensitivity | specificity |",
              "|---|---|---|---|---|---|---|---|"]
    for name, m in s["models"].items():
        c = m["classification"]
        for cls, v in list(c["per_class"].items()) + [("macro", c["macro"])]:
            tau = c["thresholds"].get(cls)
            lines.append(f"| {name} | {cls} | {fmt(tau)} | " + " | ".join(
                ci(v[k]) for k in ("auroc", "auprc", "f1", "sensitivity", "specificity")) + " |")
    lines += ["", "## Table 3: IoU@5% and AUITC, original vs SegX (pairs with a ground truth)", "",
              "SegX = T5(map x segmentation) (mask first, the public code); binarise first = "
              "T5(map) AND segmentation (Eq. 6). Differences: paired bootstrap over pairs. "
              "Controls: SegX of a uniform random map, SegX with the ground truth as the "
              "segmentation (oracle), and the IoU@5% any map can reach (ceiling).", "",
              "| model | explainer | pairs | IoU@5% original | SegX | SegX − original | "
              "binarise first | AUITC original | SegX | SegX − original | random-map SegX "
              "IoU / AUITC | real − random SegX IoU | oracle SegX IoU | ceiling |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in s["models"].items():
        for explainer, e in m["explainers"].items():
            label = explainer_name(m, explainer)
            if not e.get("n_table3"):
                lines.append(f"| {name} | {label} | 0 | " + " | ".join(["–"] * 11) + " |")
                continue
            i, a, ctl = e["iou_top5"], e["auitc"], e["controls"]
            lines.append(
                f"| {name} | {label} | {e['n_table3']} | {fmt(i['original'])} | "
                f"{fmt(i['segx'])} | {signed_ci(i['difference'])} | "
                f"{fmt(i['segx_binarise_first'])} | {fmt(a['original'])} | {fmt(a['segx'])} | "
                f"{signed_ci(a['difference'])} | {fmt(ctl['random_map_segx']['iou_top5'])} / "
                f"{fmt(ctl['random_map_segx']['auitc'])} | "
                f"{signed_ci(ctl['real_minus_random_segx_iou_top5'])} | "
                f"{fmt(ctl['oracle_segmentation_segx']['iou_top5'])} | "
                f"{fmt(ctl['iou_top5_ceiling'])} |")
    lines += ["", "## Table 4: SegU certainty for correct (TP) vs incorrect (FP) predicted "
              "positives", "",
              "AUROC: how well the score separates TP from FP pairs (95% bootstrap CI); p = the "
              "class probability itself, for comparison; p + c_IoU = out-of-fold logistic "
              "regression on both (does the certainty add to p?). AURC: area under the "
              "risk-coverage curve (lower is better).", "",
              "| model | explainer | TP | FP | c_IoU TP | c_IoU FP | c_AUITC TP | c_AUITC FP | "
              "AUROC c_IoU | AUROC c_AUITC | AUROC p | AUROC p + c_IoU | AURC c_IoU / c_AUITC / p |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in s["models"].items():
        for explainer, e in m["explainers"].items():
            if "c_iou" not in e:
                continue
            au, rc = e["certainty_auroc"], e["risk_coverage"]
            lines.append(
                f"| {name} | {explainer_name(m, explainer)} | {e['n_correct']} | {e['n_incorrect']} | "
                f"{fmt(e['c_iou']['correct'])} | {fmt(e['c_iou']['incorrect'])} | "
                f"{fmt(e['c_auitc']['correct'])} | {fmt(e['c_auitc']['incorrect'])} | "
                f"{ci(au['c_iou'])} | {ci(au['c_auitc'])} | {ci(au['probability'])} | "
                f"{ci(au['probability+c_iou']) if 'probability+c_iou' in au else '–'} | "
                f"{fmt(rc['c_iou']['aurc'])} / {fmt(rc['c_auitc']['aurc'])} / "
                f"{fmt(rc['probability']['aurc'])} |")
    lines += ["", "Timing: " + "; ".join(
        f"{name} trained {m['training']['seconds']:.0f} s, maps " + ", ".join(
            f"{k} {e['seconds']:.0f} s" for k, e in m["explainers"].items())
        for name, m in s["models"].items()) + "."]
    return lines


def plot_segx_overlays(run_dir, path, rows: int = 4) -> bool:
    """SegX Fig. 3 layout: per image (those with a finding first), the input with the
    segmentation (cyan) and ground-truth (yellow) outlines, then for each model x explainer the
    top 5% of the original map (red) and of the SegX map (green) for the image's first
    predicted-positive class."""
    run_dir = Path(run_dir)
    file = run_dir / "segx_maps.npz"
    if not file.exists():
        return False
    from ...metrics.localization import top_k_pixels
    saved = np.load(file)
    keys = sorted(k.removesuffix("/maps") for k in saved.files if k.endswith("/maps"))
    keys = [k for k in keys if len(saved[f"{k}/pairs"])]
    if not keys:
        return False
    images, seg = saved["images"], saved["segmentation"]
    truth = saved["ground_truth"] if "ground_truth" in saved.files else np.zeros_like(seg)
    first = saved[f"{keys[0]}/pairs"]
    # images with a finding first (their ground truth is drawn), then the rest
    order = sorted(dict.fromkeys(first[:, 0].tolist()), key=lambda i: not truth[i].any())
    picks = [int(i) for i in order][:rows]
    from matplotlib.colors import ListedColormap
    colours = {False: ListedColormap(["red"]), True: ListedColormap(["lime"])}
    plt = pyplot()
    cols = 1 + 2 * len(keys)
    fig, axes = plt.subplots(len(picks), cols, figsize=(1.9 * cols, 1.9 * len(picks)),
                             squeeze=False)
    for r, img in enumerate(picks):
        image = images[img].astype(np.float32) / 255
        image = image[..., 0] if image.shape[-1] == 1 else image
        axes[r][0].imshow(image, cmap="gray")
        axes[r][0].contour(seg[img], levels=[0.5], colors="cyan", linewidths=0.7)
        if truth[img].any():
            axes[r][0].contour(truth[img], levels=[0.5], colors="yellow", linewidths=0.7)
        axes[r][0].set_title("segmentation | truth", fontsize=7)
        for c, key in enumerate(keys):
            pairs, maps = saved[f"{key}/pairs"], saved[f"{key}/maps"].astype(np.float32)
            hit = np.flatnonzero(pairs[:, 0] == img)
            for j, (title, masked) in enumerate((("original", False), ("SegX", True))):
                ax = axes[r][1 + 2 * c + j]
                ax.imshow(image, cmap="gray")
                if len(hit):
                    m = maps[hit[0]] * (seg[img] if masked else 1)
                    top = top_k_pixels(m[None])[0]
                    ax.imshow(np.ma.masked_where(~top, top), cmap=colours[masked], alpha=0.8)
                    if truth[img].any():
                        ax.contour(truth[img], levels=[0.5], colors="yellow", linewidths=0.6)
                ax.set_title(wrap_title(f"{key.replace('/', ' ')} {title}", 22), fontsize=6)
    for ax in axes.ravel():
        ax.axis("off")
    return save_figure(fig, path)


def plot_risk_coverage(report, path) -> bool:
    """Risk-coverage curves of c_IoU, c_AUITC and p per model x explainer."""
    cells = [(f"{n} {k}", e["risk_coverage"]) for n, m in report["segx"]["models"].items()
             for k, e in m["explainers"].items() if "risk_coverage" in e and k != "gradcam_last"]
    if not cells:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3), squeeze=False)
    for ax, (title, curves) in zip(axes[0], cells):
        for name, curve in curves.items():
            ax.plot(curve["coverage"], curve["risk"], label=f"{name} (AURC {fmt(curve['aurc'])})")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("coverage")
        ax.set_ylabel("risk (FP share)")
        ax.legend(fontsize=6)
    return save_figure(fig, path)
