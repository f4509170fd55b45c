"""gfsr evaluate: the full evaluation of one saved classifier -> a run folder with report.html."""
from __future__ import annotations

from pathlib import Path

from .common import add_saved_model_arguments


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a saved classifier and write a report")
    add_saved_model_arguments(p, "evaluate")
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..study import evaluate_saved_model
    from .common import load_model_and_card, saved_model_study
    model, card = load_model_and_card(args.model)
    config = saved_model_study(args, model, card, "evaluate")
    report = evaluate_saved_model(model, card, config, args.out, layer=args.layer)
    root = Path(args.out) / config.name
    print((root / "summary.md").read_text())
    print(f"report: {root / 'report.html'}")
    return report
