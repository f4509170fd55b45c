"""gfsr audit: does a saved classifier react to a laterality marker? The shortcut audit alone
(exact counterfactual twins on the benchmark; an "R" pasted into every test image's top-left
corner on real data) -> a run folder with audit.json, report.json and summary.md."""
from __future__ import annotations

import json
from pathlib import Path

from .common import add_saved_model_arguments


def add_parser(sub):
    p = sub.add_parser("audit", help="the shortcut audit of a saved binary classifier: marker "
                       "effects in logits, within-class marker AUC, deletion/insertion")
    add_saved_model_arguments(p, "audit")
    p.add_argument("--text-overlay", action="store_true",
                   help="also paste an 'AP' text overlay into every image's top-right corner "
                        "and report its effect")
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..study import evaluate_saved_model
    from .common import load_model_and_card, saved_model_study
    model, card = load_model_and_card(args.model)
    outputs = int(model.outputs[0].shape[-1])
    if outputs != 1:
        raise ValueError(f"the audit needs a binary classifier with one sigmoid output; "
                         f"{args.model} has {outputs}")
    config = saved_model_study(args, model, card, "audit")
    config.evaluators = ("audit",)
    if args.text_overlay:
        config.audit_overlays = ("text",)
    evaluate_saved_model(model, card, config, args.out, layer=args.layer)
    root = Path(args.out) / config.name
    audit = json.loads((root / "report.json").read_text())["model"].get("audit", {})
    (root / "audit.json").write_text(json.dumps(audit, indent=2))
    print((root / "summary.md").read_text())
    print(f"audit: {root / 'audit.json'}; report: {root / 'report.html'}")
    return audit
