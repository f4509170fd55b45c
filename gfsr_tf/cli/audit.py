"""gfsr audit: does a saved classifier react to a laterality marker? The shortcut audit alone
(exact counterfactual twins on the benchmark; an "R" pasted into every test image's top-left
corner on real data) -> a run folder with report.json and summary.md."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("audit", help="the shortcut audit of a saved binary classifier: marker "
                       "effects in logits, within-class marker AUC, deletion/insertion")
    p.add_argument("--model", required=True, help="a .keras classifier (binary head)")
    p.add_argument("--data-dir", help="real data as for `gfsr train` (default: the model card's "
                   "data, else the embedded benchmark)")
    p.add_argument("--layer", help="Grad-CAM layer (default: the model card's)")
    p.add_argument("--out", default="runs")
    p.add_argument("--name", help="report folder name (default: audit_<run>)")
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..config import StudyConfig
    from ..presets import preset
    from ..study import evaluate_saved_model
    from .common import load_model_and_card
    model, card = load_model_and_card(args.model)
    if int(model.outputs[0].shape[-1]) != 1:
        raise ValueError("the audit needs a binary classifier with one sigmoid output; "
                         f"{args.model} has {int(model.outputs[0].shape[-1])} outputs")
    config = StudyConfig.from_dict(card["config"]) if card.get("config") else preset("benchmark")
    config.name = args.name or f"audit_{Path(args.model).parent.name}"
    config.evaluators = ("audit",)
    if args.data_dir:
        config.data_dir = args.data_dir
    config.benchmark = dataclasses.replace(config.benchmark, image_size=model.input_shape[1])
    report = evaluate_saved_model(model, card, config, args.out, layer=args.layer)
    audit = report["model"].get("audit", {})
    root = Path(args.out) / config.name
    (root / "audit.json").write_text(json.dumps(json.loads((root / "report.json").read_text())
                                                ["model"].get("audit", {}), indent=2))
    print((root / "summary.md").read_text())
    return audit
