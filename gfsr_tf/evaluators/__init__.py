"""Evaluators chosen by name from the study config (big_vision's `evaluators/common.py`). Each
takes an `EvalContext` and returns the keys it adds to the model's report section; maps they
compute are cached in the context and saved as `<variant>/explanations.npz`."""
from __future__ import annotations

import time

from . import audit, classification, examples, focus, gaze, localization, maps, robustness
from .comparison import compare, compare_models
from .context import EvalContext, decide

EVALUATORS = {"classification": classification.evaluate, "robustness": robustness.evaluate,
              "localization": localization.evaluate, "focus": focus.evaluate,
              "audit": audit.evaluate, "gaze": gaze.evaluate, "examples": examples.evaluate,
              "maps": maps.evaluate}


def check_names(names) -> None:
    unknown = [n for n in names if n not in EVALUATORS]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {unknown}; choose from {', '.join(EVALUATORS)}")


def evaluate_model(ctx: EvalContext, names=tuple(EVALUATORS)) -> dict:
    """The model's report section from the named evaluators, in order; saves its maps."""
    check_names(names)
    section: dict = {}
    seconds = {}
    for name in names:
        t0 = time.perf_counter()
        section.update(EVALUATORS[name](ctx))
        # what each evaluator costs (maps computed once are charged to the first that asks)
        seconds[name] = time.perf_counter() - t0
    section["evaluation_seconds"] = seconds
    section["saliency"] = ctx.saliency  # which map every map figure of the section reads
    for key in ("metrics", "robustness", "localization", "predictions"):
        section.setdefault(key, {})  # report.json always had these keys
    ctx.save()
    return section


__all__ = ["EVALUATORS", "EvalContext", "check_names", "compare", "compare_models", "decide",
           "evaluate_model"]
