"""gfsr evaluate: the full evaluation of one saved classifier -> a run folder with report.html."""
from __future__ import annotations

import dataclasses
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a saved classifier and write a report")
    p.add_argument("--model", required=True, help="a .keras classifier")
    p.add_argument("--data-dir", help="real data as for `gfsr train` (default: the model card's "
                   "data, else the embedded benchmark)")
    p.add_argument("--layer", help="Grad-CAM layer for localization (default: the model card's)")
    p.add_argument("--out", default="runs")
    p.add_argument("--name", help="report folder name (default: evaluate_<run>)")
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..config import StudyConfig
    from ..presets import preset
    from ..study import evaluate_saved_model
    from .common import load_model_and_card
    model, card = load_model_and_card(args.model)
    config = StudyConfig.from_dict(card["config"]) if card.get("config") else preset("benchmark")
    config.name = args.name or f"evaluate_{Path(args.model).parent.name}"
    if args.data_dir:
        config.data_dir = args.data_dir
    config.benchmark = dataclasses.replace(config.benchmark, image_size=model.input_shape[1])
    report = evaluate_saved_model(model, card, config, args.out, layer=args.layer)
    root = Path(args.out) / config.name
    print((root / "summary.md").read_text())
    print(f"report: {root / 'report.html'}")
    return report
