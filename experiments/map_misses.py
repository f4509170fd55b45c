"""Where do a binary model's Grad-CAM misses go? For one model of a finished run folder, on the
split its report judged (the decorrelated test split on the benchmarks): the pointing game
against the lung fields of the map the report shows (true class) and of the other class's map
(Grad-CAM's counterfactual explanation: the evidence against the true class), per label, and
for the true-class map split by the model's confidence; beside each, how many maps are all
zero, and the cell where the other maps peak most often with the share of images peaking there.

    python experiments/map_misses.py runs/pneumonia_gfsr --model gfsr_plus

prints the table and writes runs/<run>/<model>/map_misses.json. Round 6 of
docs/studies/right-reasons.md used it to find that gfsr_plus's misses are pneumonia images it is
unsure of, whose map peaks where the other class's map peaks on nearly every image (a border
cell).
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


def peaks(maps):
    """Per map, the (row, column) of its maximum (first in scan order: a constant map peaks at
    (0, 0), as the pointing game reads it)."""
    import numpy as np
    flat = maps.reshape(len(maps), -1).argmax(1)
    return np.stack(np.unravel_index(flat, maps.shape[1:]), 1)


def summarise(maps, lungs, select) -> dict:
    """Pointing-game lung hits of maps[select] and the most common peak cell with its share."""
    import numpy as np
    from gfsr_tf.metrics import hit_rate
    n = int(select.sum())
    if n == 0:
        return {"n": 0}
    hits = np.asarray(hit_rate(maps[select], lungs[select])["hits"], bool)
    # an all-zero map (no evidence for that class at this layer) "peaks" at (0, 0) too: counted
    # apart, so that a corner of empty maps is not read as evidence in the corner
    empty = maps[select].reshape(n, -1).max(1) <= 0
    where = peaks(maps[select])
    cells, counts = np.unique(where[~empty], axis=0, return_counts=True)
    if len(cells) == 0:
        return {"n": n, "lung_hit_rate": float(hits.mean()), "all_zero": n, "misses": int(n)}
    top = counts.argmax()
    return {"n": n, "lung_hit_rate": float(hits.mean()), "all_zero": int(empty.sum()),
            "modal_peak": [int(v) for v in cells[top]], "modal_peak_share": float(counts[top] / n),
            "misses": int((~hits).sum()),
            "misses_at_modal_peak": int((~hits & ~empty & np.all(where == cells[top], 1)).sum())}


def diagnose(run_dir: Path, model_name: str, layer: str | None = None) -> dict:
    import keras
    import numpy as np
    from gfsr_tf.artifacts import read_model_card
    from gfsr_tf.config import StudyConfig
    from gfsr_tf.evaluators.context import eval_split
    from gfsr_tf.methods import get_method
    from gfsr_tf.preprocessing import get_preprocessor
    from gfsr_tf.study.data import load_data
    path = run_dir / model_name / "best.keras"
    if not path.is_file():
        raise ValueError(f"{path}: no such model (a finished run folder and one of its models)")
    config = StudyConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    card = read_model_card(path)
    data = load_data(config)
    split_name = eval_split(data)
    split = data[split_name]
    if split.lungs is None or len(split.class_names) != 2:
        raise ValueError(f"{run_dir}: needs a binary dataset with lung fields (the benchmark)")
    layer = layer or card.get("target_layer")
    # the maps the study's evaluator draws: the method's own explanation of its classifier
    method = get_method(card.get("method", "baseline"))
    model = method.classifier_view(keras.models.load_model(path))
    explain = method.explain
    x = np.asarray(get_preprocessor(card["preprocessor"])(split.images))
    labels = split.labels.astype(int)
    # two Grad-CAM passes over the split (about half a minute for 400 images at 64 px on 2 cores)
    print(f"{model_name}: Grad-CAM of the true and the other class on {len(labels)} "
          f"{split_name} images at {layer or 'the last 4-D layer'} ...", file=sys.stderr)
    true = explain(model, x, layer=layer, class_index=labels)
    other = explain(model, x, layer=layer, class_index=1 - labels)
    lungs = split.lungs > 0
    confident = true.probabilities[np.arange(len(labels)), labels] >= 0.5
    rows = []
    for label in (0, 1):
        name = split.class_names[label]
        at = labels == label
        rows += [{"map": "true class", "images": name, **summarise(true.heatmaps, lungs, at)},
                 {"map": "true class", "images": f"{name}, p(true) >= 0.5",
                  **summarise(true.heatmaps, lungs, at & confident)},
                 {"map": "true class", "images": f"{name}, p(true) < 0.5",
                  **summarise(true.heatmaps, lungs, at & ~confident)},
                 {"map": "other class", "images": name,
                  **summarise(other.heatmaps, lungs, at)}]
    result = {"run": str(run_dir), "model": model_name, "split": split_name, "layer": true.layer,
              "map_size": list(true.heatmaps.shape[1:]), "rows": rows}
    (run_dir / model_name / "map_misses.json").write_text(json.dumps(result, indent=2))
    return result


def markdown(result: dict) -> str:
    lines = [f"Lung-field pointing game of {result['model']} ({result['run']}), "
             f"{result['split']}, Grad-CAM at {result['layer']} (map {result['map_size']} px)", "",
             "| map | images | n | lung hit | misses | all-zero maps | most common peak of the "
             "others (share of n) | misses there |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["n"] == 0:
            lines.append(f"| {r['map']} | {r['images']} | 0 | – | – | – | – | – |")
        elif "modal_peak" not in r:
            lines.append(f"| {r['map']} | {r['images']} | {r['n']} | {r['lung_hit_rate']:.3f} | "
                         f"{r['misses']} | {r['all_zero']} | – | – |")
        else:
            lines.append(f"| {r['map']} | {r['images']} | {r['n']} | {r['lung_hit_rate']:.3f} | "
                         f"{r['misses']} | {r['all_zero']} | {tuple(r['modal_peak'])} "
                         f"({r['modal_peak_share']:.2f}) | {r['misses_at_modal_peak']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder (holds config.json)")
    parser.add_argument("--model", required=True, help="one of its models (a variant's folder)")
    parser.add_argument("--layer", help="target layer (default: the model's own)")
    args = parser.parse_args(argv)
    try:
        if not (args.run / "config.json").is_file():
            raise ValueError(f"{args.run}: not a run folder (no config.json)")
        print(markdown(diagnose(args.run, args.model, args.layer)))
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
