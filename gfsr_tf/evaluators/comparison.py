"""Study-level comparison: each variant minus the baseline on the same test images (paired
bootstrap). `comparison` keeps the historical gfsr - baseline; `comparisons` holds them all."""
from __future__ import annotations

import numpy as np

from ..metrics.classification import mean_ci, paired_bootstrap


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


def compare_faithfulness(a: dict, b: dict) -> dict:
    """Deletion and insertion AUC of model a's maps minus model b's, on the same test images:
    the mean of the per-image differences with a seeded bootstrap CI over images (paired);
    the same for the lesion-twin curves where the audit has them."""
    audit_a, audit_b = a.get("audit", {}), b.get("audit", {})
    out = {}
    for key in ("deletion", "insertion", "lesion_twin_deletion", "lesion_twin_insertion"):
        pa, pb = audit_a.get(f"{key}_per_image"), audit_b.get(f"{key}_per_image")
        if pa is not None and pb is not None and len(pa) == len(pb):
            out[f"{key}_auc_difference"] = mean_ci(np.asarray(pa, float) - np.asarray(pb, float))
    # A diagnostic beside the goal, not a goal: the probability the deletion removes (curve
    # start minus deletion AUC; higher = the map's top pixels matter more). The deletion AUC
    # also rises with the start, so a model surer of the unmodified images (a better decision)
    # can lose on it with a map that removes more (docs/studies/right-reasons.md, round 8).
    starts = audit_a.get("deletion_start_per_image"), audit_b.get("deletion_start_per_image")
    if "deletion_auc_difference" in out and None not in starts:
        removed = [np.asarray(s, float) - np.asarray(audit["deletion_per_image"], float)
                   for s, audit in zip(starts, (audit_a, audit_b))]
        out["deletion_drop_difference"] = mean_ci(removed[0] - removed[1])
    # The lesion-twin curve's share the map leaves, (AUC - end) / (start - end): 0 = its first
    # pixels remove all the lesion does to the decision, 1 = none until the last. Paired over
    # the images where the lesion moves both decisions by >= LESION_EFFECT_FLOOR (below that
    # the ratio divides by round-off), so a decision that uses the lesion less is not
    # rewarded for having less to lose.
    shares = [lesion_twin_share(audit) for audit in (audit_a, audit_b)]
    if None not in shares and len(shares[0][0]) == len(shares[1][0]):
        both = shares[0][1] & shares[1][1]
        if both.any():
            out["lesion_twin_remaining_share_difference"] = {
                **mean_ci(shares[0][0][both] - shares[1][0][both]), "n": int(both.sum())}
    return out


LESION_EFFECT_FLOOR = 0.2


def lesion_twin_share(audit: dict):
    """Per lesion image, (AUC - end) / (start - end) of the lesion-twin deletion curve and
    whether start - end >= LESION_EFFECT_FLOOR; None without those curves."""
    keys = [f"lesion_twin_{k}_per_image" for k in ("deletion", "start", "end")]
    if any(k not in audit for k in keys):
        return None
    auc, start, end = (np.asarray(audit[k], float) for k in keys)
    effect = start - end
    moved = effect >= LESION_EFFECT_FLOOR
    return np.where(moved, (auc - end) / np.where(moved, effect, 1.0), np.nan), moved


def compare(report: dict, variants: list[str], data: dict, reference: str = "baseline") -> dict:
    if reference not in report or "predictions" not in report[reference]:
        return {}
    others = {}
    for v in variants:
        if v == reference or "predictions" not in report.get(v, {}):
            continue
        others[v] = compare_models(report[v], report[reference], data)
        faithfulness = compare_faithfulness(report[v], report[reference])
        if faithfulness:
            others[v]["faithfulness"] = faithfulness
    out = {"comparisons": others} if others else {}
    if "gfsr" in others:
        out["comparison"] = others["gfsr"]
    return out
