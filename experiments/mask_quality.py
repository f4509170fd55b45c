"""How good are the propagated masks on a real-image shortcut benchmark, per concept setting?
Before any model trains: for each seed's training split (its own subsample and marker draw) the
template annotations on 5 images per class are propagated (SLIC -> ResNet50 segment embeddings
-> k-means) with each setting, and the masks are judged where no true lung mask exists — mean
relevance inside the planted marker's box, inside the template region (lung fields, fundus disc)
and elsewhere on the marked images (`study.guidance.shortcut_relevance`, the report's "Relevance
masks"), and the masks' pixel AUC for the template region over all training images:

    python experiments/mask_quality.py \\
        --data-dir ../shared/data/pneumoniamnist/pneumoniamnist.npz --seeds 0,1,2 \\
        --settings "default;k=15;k=15,position_weight=16" \\
        --set benchmark.marker_rate_pneumonia=0.95 --set benchmark.marker_rate_normal=0.05

A setting is a comma-separated list of `concepts.*` options (ConceptConfig), "default" the
preset's. Writes runs/<name>/results.{md,json,png} (name: mask_quality_<dataset>) and prints the
table. The template is the annotations' source, so a mask that reproduced it would score AUC 1:
the figure says how far the propagation carries the annotations, not where real lungs are.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gfsr_tf.cli import USER_ERRORS  # noqa: E402
from gfsr_tf.cli.common import (add_study_arguments, import_tensorflow_quietly,  # noqa: E402
                                study_config)


def parse_settings(text: str) -> dict[str, dict]:
    """"default;k=15,position_weight=16" -> {"default": {}, "k=15,position_weight=16": {...}},
    values parsed and checked as ConceptConfig fields; ValueError on an unknown option."""
    import dataclasses
    from gfsr_tf.config import ConceptConfig, checked_value
    fields = {f.name: f for f in dataclasses.fields(ConceptConfig)}
    out = {}
    for item in (s.strip() for s in text.split(";")):
        if not item:
            continue
        options = {}
        if item != "default":
            for pair in item.split(","):
                key, sep, value = (p.strip() for p in pair.partition("="))
                if not sep or key not in fields:
                    raise ValueError(f"--settings {item!r}: expected OPTION=VALUE with OPTION one "
                                     f"of {', '.join(fields)}")
                # parsed as `--set` parses (JSON when it parses, else a string), typed by the
                # same check as every config field
                try:
                    parsed = json.loads(value)
                except json.JSONDecodeError:
                    parsed = value
                try:
                    options[key] = checked_value("concepts", fields[key], parsed)
                except ValueError as exc:
                    default = getattr(ConceptConfig(), key)
                    whole = " (a whole number)" if isinstance(default, int) else ""
                    raise ValueError(f"--settings {item!r}: {key} takes a number{whole}, got "
                                     f"{value!r}" if isinstance(default, (int, float))
                                     else f"--settings {item!r}: {exc}") from None
            dataclasses.replace(ConceptConfig(), **options)   # checked like a preset's
        out[item] = options
    if not out:
        raise ValueError("--settings: give at least one setting")
    return out


def judge(config, settings: dict, out: Path, verbose: bool) -> list[dict]:
    import dataclasses
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from gfsr_tf.datasets.real_shortcut import TEMPLATE_OF
    from gfsr_tf.guidance.masks import propagated_masks
    from gfsr_tf.guidance.templates import template_mask, write_template_annotations
    from gfsr_tf.study.data import load_data
    from gfsr_tf.study.guidance import shortcut_relevance
    template = TEMPLATE_OF[config.dataset]
    train = load_data(config)["train"]
    seed = config.train.seed
    annotations = write_template_annotations(train.images, train.labels, train.names, template,
                                             out / f"template_annotations_seed{seed}",
                                             config.annotations_per_class)
    region = np.stack([template_mask(template, im) > 0.5 for im in train.images]).ravel()
    example = np.flatnonzero(train.has_marker)[0]     # the figure's marked training image
    rows = []
    for name, options in settings.items():
        concepts = dataclasses.replace(config.concepts, **options)
        result, _ = propagated_masks(train, concepts, str(annotations),
                                     per_class=config.annotations_per_class, seed=seed,
                                     cache_dir=out / "cache", verbose=int(verbose), warnings=[])
        q = shortcut_relevance(result.masks, train, template)
        rows.append({"seed": seed, "setting": name, "marker_box": q["marker_box_mean"],
                     "template_region": q["template_region_mean"], "elsewhere": q["outside_mean"],
                     "template_pixel_auc": float(roc_auc_score(region, result.masks.ravel())),
                     "example": result.masks[example].tolist()})
        if verbose:
            print(f"seed {seed} {name}: box {q['marker_box_mean']:.3f} / template "
                  f"{q['template_region_mean']:.3f} / elsewhere {q['outside_mean']:.3f}",
                  file=sys.stderr)
    rows[0]["example_image"] = train.images[example].tolist()
    return rows


def markdown(rows: list[dict], title: str) -> str:
    lines = [title, "", "| seed | setting | marker box | template region | elsewhere | "
             "template pixel AUC |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['setting']} | {r['marker_box']:.3f} | "
              f"{r['template_region']:.3f} | {r['elsewhere']:.3f} | "
              f"{r['template_pixel_auc']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path, title: str) -> None:
    """One marked training image per seed (the first) and its mask under each setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    seeds = sorted({r["seed"] for r in rows})
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig, axes = plt.subplots(len(seeds), len(settings) + 1, squeeze=False,
                             figsize=(2.2 * (len(settings) + 1), 2.4 * len(seeds)))
    for i, seed in enumerate(seeds):
        mine = [r for r in rows if r["seed"] == seed]
        image = np.asarray(mine[0]["example_image"])
        axes[i, 0].imshow(image.mean(-1) if image.ndim == 3 else image, cmap="gray")
        axes[i, 0].set_title(f"seed {seed}: marked image", fontsize=8)
        for j, r in enumerate(mine, 1):
            axes[i, j].imshow(np.asarray(r["example"]), cmap="magma", vmin=0, vmax=1)
            axes[i, j].set_title(f"{r['setting']}\nbox {r['marker_box']:.2f} / template "
                                 f"{r['template_region']:.2f} / else {r['elsewhere']:.2f}",
                                 fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser, default_preset="real_shortcut")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--settings", default="default", help="semicolon-separated concept "
                        "settings, each OPTION=VALUE[,...] or 'default' (default: default)")
    args = parser.parse_args(argv)
    try:
        from gfsr_tf.datasets.real_shortcut import TEMPLATE_OF
        settings = parse_settings(args.settings)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        if args.seed is not None:
            raise ValueError("use --seeds for this experiment, not --seed")
        configs = []
        for seed in seeds:
            args.seed = seed
            configs.append(study_config(args))
        dataset = configs[0].dataset
        if dataset not in TEMPLATE_OF:
            raise ValueError(f"--dataset {dataset}: mask quality is judged on a real-image "
                             f"shortcut benchmark ({', '.join(TEMPLATE_OF)})")
        if not configs[0].data_dir:
            raise ValueError(f"{dataset} needs --data-dir (its MedMNIST npz)")
        import_tensorflow_quietly()
        out = Path(args.out) / (args.name or f"mask_quality_{dataset}")
        out.mkdir(parents=True, exist_ok=True)
        rows = [row for c in configs for row in judge(c, settings, out, not args.quiet)]
        title = (f"Propagated masks on {dataset}'s training split (marked images; mean relevance) "
                 f"per concept setting, seeds {args.seeds}")
        (out / "results.md").write_text(markdown(rows, title))
        figure(rows, out / "results.png", title)
        (out / "results.json").write_text(json.dumps(
            {"title": title, "rows": [{k: v for k, v in r.items() if not k.startswith("example")}
                                      for r in rows]}, indent=2))
        print(markdown(rows, title))
        return 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
