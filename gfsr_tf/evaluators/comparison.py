"""Study-level comparison: each variant minus the baseline on the same test images (paired
bootstrap). `comparison` keeps the historical gfsr - baseline; `comparisons` holds them all."""
from __future__ import annotations

import numpy as np

from ..metrics.classification import paired_bootstrap


def compare_models(a: dict, b: dict, data: dict, n_resamples: int = 1000) -> dict:
    """Paired bootstrap (same resampled test images) of model a minus model b per test split."""
    out = {}
    for split, pa in a["predictions"].items():
        labels = data[split].labels
        out[split] = {metric: paired_bootstrap(labels, np.asarray(pa),
                                               np.asarray(b["predictions"][split]), metric,
                                               n_resamples)
                      for metric in ("accuracy", "auc")}
    return out


def compare(report: dict, variants: list[str], data: dict, reference: str = "baseline") -> dict:
    if reference not in report or "predictions" not in report[reference]:
        return {}
    others = {v: compare_models(report[v], report[reference], data) for v in variants
              if v != reference and "predictions" in report.get(v, {})}
    out = {"comparisons": others} if others else {}
    if "gfsr" in others:
        out["comparison"] = others["gfsr"]
    return out
