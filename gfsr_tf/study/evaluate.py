"""Evaluate one saved model (`gfsr evaluate`): the study's evaluators on its data, written as a
run folder with one variant, "model"."""
from __future__ import annotations

import time
from pathlib import Path

from ..evaluators import EvalContext, evaluate_model
from ..evaluators.context import eval_split
from ..evaluators.examples import example_index, save_examples
from ..methods import get_method
from ..preprocessing import get_preprocessor
from ..report import render_run
from ..report.io import write_json
from .data import data_summary, load_data


def evaluate_saved_model(model, card: dict, config, out_dir="runs", *, layer: str | None = None,
                         render: bool = True) -> dict:
    """`config`: the study to read data and evaluators from (the model card's, when it has one).
    The preprocessor and the explainer come from the model card."""
    warnings: list[str] = []
    t0 = time.perf_counter()
    data = load_data(config, warnings)
    try:
        method = get_method(card.get("method", "gfsr")) if card else None
    except ValueError:
        method = None  # a method this process does not know: plain Grad-CAM
    preprocessor = card.get("preprocessor", "resnet50_caffe")
    layer = layer or card.get("target_layer") or config.model.target_layer
    run_root = Path(out_dir) / config.name
    run_root.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(model, get_preprocessor(preprocessor), data, config, layer, method,
                      run_root / "model", saliency=card.get("saliency", "gradcam"))
    (run_root / "model").mkdir(exist_ok=True)
    section = evaluate_model(ctx, config.evaluators)
    section["training"] = {"history": [], "seconds": 0.0, "method": card.get("method"),
                           "options": card.get("options"), "relevance": card.get("relevance")}
    report = {"config": config.to_dict(), "warnings": warnings, "smoke": config.smoke,
              "class_names": list(data["train"].class_names), "data": data_summary(data),
              "timing": {"total_seconds": time.perf_counter() - t0}, "model": section}
    split = data[eval_split(data)]
    save_examples(run_root / "examples.npz", split, example_index(split, config.gradcam_examples),
                  eval_split(data))
    write_json(run_root / "report.json", report)
    if render:
        render_run(run_root)
    return report
