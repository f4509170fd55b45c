"""Figures drawn from report.json and the maps a run saved (no model is loaded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .basics import add_colorbar, fmt, pyplot, save_figure, wrap_title


def plot_roc(report, names, path) -> bool:
    """Binary ROC curves per test split (multi-class runs have none: see the per-class AUCs)."""
    splits = list(report[names[0]]["metrics"])
    if not any("roc" in report[n]["metrics"].get(s, {}) for n in names for s in splits):
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        for n in names:
            m = report[n]["metrics"].get(split, {})
            if "roc" in m:
                ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], label=f"{n} (AUC {fmt(m['auc'])})")
        ax.plot([0, 1], [0, 1], color="gray", lw=0.8, ls="--")
        ax.set(title=split, xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def plot_confusion(report, names, class_names, path) -> bool:
    splits = list(report[names[0]]["metrics"])
    if not splits:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(len(names), len(splits), figsize=(3.2 * len(splits), 3 * len(names)),
                             squeeze=False)
    for i, n in enumerate(names):
        for j, split in enumerate(splits):
            cm = np.asarray(report[n]["metrics"][split]["confusion_matrix"])
            ax = axes[i][j]
            ax.imshow(cm, cmap="Blues")
            for (a, b), v in np.ndenumerate(cm):
                ax.text(b, a, str(v), ha="center", va="center",
                        color="white" if v > cm.max() / 2 else "black")
            ax.set_xticks(range(len(class_names)), class_names)
            ax.set_yticks(range(len(class_names)), class_names)
            ax.set(title=f"{n} – {split}", xlabel="predicted", ylabel="true")
    return save_figure(fig, path)


def _load_npz(path):
    path = Path(path)
    return dict(np.load(path, allow_pickle=False)) if path.exists() else None


def _saved_maps(run_dir: Path, names) -> dict:
    """{variant: its explanations.npz as a dict} for the variants that saved maps."""
    saved = {n: _load_npz(run_dir / n / "explanations.npz") for n in names}
    return {n: maps for n, maps in saved.items() if maps is not None}


def plot_gradcam_grid(run_dir, names, path, rules: dict | None = None,
                      template_correlation: dict | None = None) -> bool:
    """The paper's Fig 9 layout from the saved examples: one row per image (both classes, with
    and without the marker), one column per variant (its true-class map; "EMPTY" when the map is
    all zero), then the input with the lesion outline; below them, where the audit saved them,
    one row per class with each model's class template (the mean of its maps over the split's
    images of that class), so that a map that is the same on every image shows as one. The
    title names the split and the map; `rules` {variant: "gradcam" | "layercam"} (report key
    `saliency`): a model trained towards its LayerCAM is shown with it, and its column says so;
    `template_correlation` {variant: mean correlation of its maps with their template}."""
    rules, template_correlation = rules or {}, template_correlation or {}
    run_dir = Path(run_dir)
    examples = _load_npz(run_dir / "examples.npz")
    if examples is None or len(examples["index"]) == 0:
        return False
    saved = _saved_maps(run_dir, names)
    maps = {n: (m["examples/heatmaps"].astype(np.float32), m["examples/p_true"])
            for n, m in saved.items() if "examples/heatmaps" in m}
    if not maps:
        return False
    # {variant: {class index: template}} for the variants whose audit saved them
    templates = {n: dict(zip(saved[n]["templates/classes"].astype(int),
                             saved[n]["templates/heatmaps"].astype(np.float32)))
                 for n in maps if "templates/heatmaps" in saved[n]}
    template_classes = sorted({c for per_class in templates.values() for c in per_class})
    plt = pyplot()
    images, labels = examples["images"], examples["labels"]
    class_names = [str(c) for c in examples["class_names"]]
    lesions = examples["lesions"] if examples["lesions"].ndim == 3 else None
    marked = examples["has_marker"] if "has_marker" in examples and \
        len(examples["has_marker"]) == len(images) else None
    split = str(examples["split"]) if "split" in examples and str(examples["split"]) else \
        "test split"
    cols, rows = len(maps) + 1, len(images) + len(template_classes)
    # constrained: it leaves the title its own room (tight_layout let it run into the first
    # row's titles once the template rows made the figure tall)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.3 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for r in range(len(images)):
        image = _gray(images[r])
        for c, (n, (heat, p_true)) in enumerate(maps.items()):
            shown = " (LayerCAM)" if rules.get(n, "gradcam") == "layercam" else ""
            _overlay(axes[r][c], image, heat[r], f"{n}{shown}\np(true)={p_true[r]:.2f}",
                     "  EMPTY map")
        axes[r][-1].imshow(image, cmap="gray")
        if lesions is not None:
            axes[r][-1].contour(lesions[r], levels=[0.5], colors="lime", linewidths=0.8)
        status = "" if marked is None else (", marker" if marked[r] else ", no marker")
        axes[r][-1].set_title(f"input: {class_names[labels[r]]}{status}", fontsize=7)
        for ax in axes[r]:
            ax.axis("off")
    for r, c in enumerate(template_classes, len(images)):
        # the template over an example image of its class (the benchmark's bodies are aligned;
        # the image only gives the map a place), scaled to its own maximum to show its shape
        shown = np.flatnonzero(labels == c)
        background = _gray(images[shown[0]] if len(shown) else np.zeros_like(images[0]))
        for col, n in enumerate(maps):
            axes[r][col].axis("off")
            if c not in templates.get(n, {}):
                continue
            template = templates[n][c]
            corr = template_correlation.get(n)
            r_text = f", maps' r = {corr:.2f}" if corr is not None and np.isfinite(corr) else ""
            # EMPTY: every map of the class all zero
            _overlay(axes[r][col], background, template / (float(template.max()) or 1.0),
                     f"{n}\nclass template{r_text}", "  EMPTY")
        axes[r][-1].axis("off")
        axes[r][-1].text(0.5, 0.5, wrap_title(
            f"class template, {class_names[c]}: the mean of each model's maps over the "
            f"{split}'s {class_names[c]} images (scaled to its max); r = the maps' mean "
            "correlation with their template", 30), ha="center", va="center", fontsize=7,
            transform=axes[r][-1].transAxes)
    label = "Grad-CAM" if set(rules.values()) <= {"gradcam"} else "map"
    fig.suptitle(f"True-class {label} (inference mode) per model, {split}", fontsize=9)
    return save_figure(fig, path)


def _gray(image: np.ndarray) -> np.ndarray:
    """A single-channel image as (H, W) for a gray imshow; colour images as they are."""
    return image[..., 0] if image.shape[-1] == 1 else image


def _overlay(ax, image, heat, title: str, empty_note: str) -> None:
    """A [0, 1] map over its image, titled; an all-zero map says so in red."""
    empty = float(heat.max()) <= 0
    ax.imshow(image, cmap="gray")
    ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.set_title(title + (empty_note if empty else ""), fontsize=7,
                 color="red" if empty else "black")


def plot_training(report, names, path) -> bool:
    """Training curves; False (nothing drawn) when no variant trained here (gfsr evaluate /
    audit of a saved model)."""
    if not any(report[n].get("training", {}).get("history") for n in names):
        return False
    plt = pyplot()
    keys = (("ce", "train cross-entropy"), ("relevance", "train relevance loss"),
            ("val_auc", "validation AUC"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for n in names:
        h = report[n].get("training", {}).get("history") or []
        ep = [r["epoch"] for r in h]
        for ax, (key, _) in zip(axes, keys):
            values = [r.get(key) for r in h]
            ax.plot(ep, [np.nan if v is None else v for v in values], label=n)
    for ax, (_, title) in zip(axes, keys):
        ax.set(title=title, xlabel="epoch")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_concepts(images, segments, concept_map, masks, path, titles=None,
                  cams: dict | None = None) -> None:
    """The paper's Fig 8: per image, the input, its SLIC segments coloured by concept, the
    propagated relevance mask and (optional) heatmaps {model name: (N, H, W)} of the same
    images. All arrays hold the chosen images only."""
    plt = pyplot()
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries
    cams = cams or {}
    cols = 3 + len(cams)
    fig, axes = plt.subplots(len(images), cols, figsize=(2.3 * cols, 2.3 * len(images)),
                             squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for r in range(len(images)):
        image = images[r, ..., 0] if images.shape[-1] == 1 else images[r]
        gray = image if image.ndim == 2 else image.mean(-1)
        painted = label2rgb(concept_map[r], gray / 255.0, colors=colours, alpha=0.45,
                            bg_label=-1)
        edges = find_boundaries(segments[r], mode="inner")
        painted[edges] = 0.6 * painted[edges] + 0.4  # light, translucent segment outlines
        panels = [(image, "gray", titles[r] if titles else f"#{r}"),
                  (painted, None, "segments by concept"), (masks[r], "magma", "relevance mask")]
        panels += [(cam[r], "jet", f"{name} Grad-CAM") for name, cam in cams.items()]
        for c, (img, cmap, t) in enumerate(panels):
            axes[r][c].imshow(img, cmap=cmap, vmin=0 if cmap == "magma" else None,
                              vmax=1 if cmap == "magma" else None)
            axes[r][c].set_title(t, fontsize=8)
            axes[r][c].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_run_concepts(report, run_dir, names, path) -> bool:
    """Fig 8 for a run: the saved non-annotated training images with the map of every variant
    trained on the propagated masks."""
    run_dir = Path(run_dir)
    saved = _load_npz(run_dir / "concepts.npz")
    if saved is None or len(saved["index"]) == 0:
        return False
    cams = {n: value.astype(np.float32) for n, maps in _saved_maps(run_dir, names).items()
            for key, value in maps.items() if key.startswith("concept_examples/")}
    titles = [f"#{i}" for i in saved["index"]]
    plot_concepts(saved["images"], saved["segments"], saved["concept_map"], saved["masks"],
                  path, titles, cams)
    return True


def plot_mask_quality(report, path) -> bool:
    """Per marked training image, the propagated mask's mean inside the marker box, inside the
    template region and elsewhere (report["masks"]["shortcut_relevance"])."""
    q = report.get("masks", {}).get("shortcut_relevance")
    if not q:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    parts = [(name, [v for v in values if v is not None and np.isfinite(v)])
             for name, values in (("marker box", q["marker_box"]),
                                  (f"{q['template'].replace('_', ' ')} region",
                                   q["template_region"]), ("elsewhere", q["outside"]))]
    parts = [(name, values) for name, values in parts if values]
    ax.boxplot([v for _, v in parts], showmeans=True)
    ax.set_xticks(range(1, len(parts) + 1), [name for name, _ in parts])
    ax.set_ylabel("mean propagated relevance")
    ax.set_ylim(0, 1)
    ax.set_title(wrap_title(f"Propagated masks on the {len(q['marker_box'])} marked training "
                            "images: relevance given to the planted marker", 60), fontsize=9)
    return save_figure(fig, path)


def plot_map_rows(run_dir, names, path) -> bool:
    """MedicalPatchNet's Fig. 5 layout from the maps evaluator's saved examples: one row per
    image - the input, each patch model's signed raw map (red for, blue against the class,
    centred on 0), then every other model's maps (Grad-CAM, Grad-CAM++, Eigen-CAM)."""
    saved = {n: maps for n, maps in _saved_maps(Path(run_dir), names).items()
             if "maps/images" in maps}
    if not saved:
        return False
    images = next(iter(saved.values()))["maps/images"].astype(np.float32)
    columns = []                                     # (title, maps, signed)
    for n, maps in saved.items():
        if "maps/signed_raw" in maps:
            columns.append((f"{n}: raw patch map", maps["maps/signed_raw"], True))
            continue
        columns += [(f"{n}: {k.removeprefix('maps/')}", maps[k], False) for k in maps
                    if k.startswith("maps/") and k not in ("maps/images",)]
    plt = pyplot()
    cols = len(columns) + 1
    fig, axes = plt.subplots(len(images), cols, figsize=(2.2 * cols, 2.2 * len(images)),
                             squeeze=False)
    for r in range(len(images)):
        image = images[r, ..., 0] if images.shape[-1] == 1 else images[r] / 255
        axes[r][0].imshow(image, cmap="gray")
        axes[r][0].set_title("input", fontsize=8)
        for c, (title, maps, signed) in enumerate(columns, 1):
            ax = axes[r][c]
            heat = maps[r].astype(np.float32)
            if signed:
                bound = float(np.abs(heat).max()) or 1.0
                ax.imshow(image, cmap="gray")
                ax.imshow(heat, cmap="RdBu_r", vmin=-bound, vmax=bound, alpha=0.6)
            else:
                ax.imshow(image, cmap="gray")
                ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(wrap_title(title, 26), fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    if any(not signed for _, _, signed in columns):
        add_colorbar(fig, axes, "jet", 0, 1, "map, normalised per image (0-1)")
    if any(signed for _, _, signed in columns):
        add_colorbar(fig, axes, "RdBu_r", -1, 1, "raw patch map / its max |value|: "
                     "against (blue) or for (red) the class")
    return save_figure(fig, path)


