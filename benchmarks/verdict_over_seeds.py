"""The main job's verdict over seeds, from finished run folders alone (no model is loaded).

    python experiments/pneumonia_gfsr.py --seed K --name pneumonia_gfsr_seedK   # K = 0, 1, 2
    python benchmarks/verdict_over_seeds.py runs/pneumonia_gfsr_seed0 runs/pneumonia_gfsr_seed1 \\
        runs/pneumonia_gfsr_seed2

Prints one markdown table: per model and seed, the figures the issue "Guided focus that is right
for the right reasons" judges (methods.gfsr.describe.verdict: decision, map on the anatomy,
faithfulness against the baseline, accuracy, time), and per model how many seeds meet each goal.
With --removal, a third table: does the deletion's removal remove anything (round 9 of
docs/studies/right-reasons.md)? Per model and seed, by class: the mean probability of class 1
with every pixel blurred (each deletion curve's end), where the curves start, the deletion AUC
minus the baseline's; the change when only the lesions are blurred; and the deletion / insertion
towards the lesion-free twin minus the baseline's, with the share of the lesion's effect the
curve leaves (paired); and does the map depend on the image (round 10): its maps' correlation
with the model's class template (the mean of its maps over the class) and the lesion-twin
deletion and share with that template as every image's map, own maps minus template (paired).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fmt(v, sign=False):
    if v is None or v != v:
        return "–"
    return f"{v:+.3f}" if sign else f"{v:.3f}"


def removal_row(report: dict, model: str) -> list[str] | None:
    """The --removal table's cells for one model of one run (None: no curve ends recorded)."""
    import numpy as np
    audit, base = report[model].get("audit", {}), report["baseline"].get("audit", {})
    if "deletion_end_per_image" not in audit:
        return None
    ends, starts = (np.asarray(audit[k], float) for k in ("deletion_end_per_image",
                                                           "deletion_start_per_image"))
    labels = np.asarray(report["data"][audit["split"]]["labels"][:len(ends)], int)
    # a class-0 image's curve ends at p(class 0): p(class 1) = 1 - end
    class1 = np.where(labels == 1, ends, 1 - ends)
    difference = np.asarray(audit["deletion_per_image"], float) - np.asarray(
        base["deletion_per_image"], float)
    by_class = [labels == c for c in (0, 1)]
    ci = (lambda c: "–" if not c else
          f"{fmt(c['estimate'], True)} [{fmt(c['ci_low'], True)}, {fmt(c['ci_high'], True)}]")
    faith = report.get("comparisons", {}).get(model, {}).get("faithfulness", {})
    share = faith.get("lesion_twin_remaining_share_difference")
    template_share = audit.get("lesion_twin_template_share_difference")
    correlation = audit.get("map_template_correlation")
    return [" / ".join(fmt(class1[m].mean()) for m in by_class),
            " / ".join(fmt(starts[m].mean()) for m in by_class),
            "–" if model == "baseline" else
            " / ".join(fmt(difference[m].mean(), True) for m in by_class),
            ci(audit.get("lesion_replaced_change")),
            ci(faith.get("lesion_twin_deletion_auc_difference")),
            ci(faith.get("lesion_twin_insertion_auc_difference")),
            "–" if not share else f"{ci(share)} ({share['n']})",
            "–" if not correlation else fmt(correlation["estimate"]),
            ci(audit.get("lesion_twin_template_deletion_difference")),
            "–" if not template_share else f"{ci(template_share)} ({template_share['n']})"]


def main(argv=None) -> int:
    from gfsr_tf.methods.gfsr.describe import verdict
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders holding report.json")
    parser.add_argument("--removal", action="store_true",
                        help="also the table: does the deletion's removal remove anything?")
    args = parser.parse_args(argv)
    rows, met, removal = [], {}, []
    for run in args.runs:
        path = Path(run) / "report.json"
        if not path.exists():
            print(f"error: no report.json in {run}", file=sys.stderr)
            return 1
        report = json.loads(path.read_text())
        seed = report["config"]["train"]["seed"]
        minutes = report.get("timing", {}).get("total_seconds", float("nan")) / 60
        judged = verdict(report)
        if not judged:
            print(f"warning: {run} has no verdict (no baseline, or data without the "
                  "benchmark's counterfactual twins): left out", file=sys.stderr)
        for r in judged:
            rows.append((r["model"], seed, r, minutes))
            cells = removal_row(report, r["model"]) if args.removal else None
            if cells:
                removal.append((r["model"], seed, cells))
            for goal, ok in r.get("met", {}).items():
                met.setdefault(r["model"], {}).setdefault(goal, []).append(ok)
    print("| model | seed | marker AUC | marker/lesion | lung hit (all) | all-zero maps | "
          "CAM-fooling | deletion − base [95% CI] | insertion − base [95% CI] | decor / corr acc "
          "| train s | run min |")
    print("|" + "---|" * 12)
    for model, seed, r, minutes in sorted(rows, key=lambda t: (t[0] != "baseline", t[0], t[1])):
        d, i = r["deletion_difference"], r["insertion_difference"]
        ci = (lambda c: "–" if not c else
              f"{fmt(c['estimate'], True)} [{fmt(c['ci_low'], True)}, {fmt(c['ci_high'], True)}]")
        print(f"| {model} | {seed} | {fmt(r['within_class_marker_auc'])} | "
              f"{fmt(r['marker_to_lesion_ratio'])} | {fmt(r['lung_hit_rate_all'])} | "
              f"{fmt(r['all_zero_maps'])} | {fmt(r['cam_fooling_rate'])} | {ci(d)} | {ci(i)} | "
              f"{fmt(r['decor_accuracy'])} / {fmt(r['corr_accuracy'])} | "
              f"{r['train_seconds']:.0f} | {minutes:.1f} |")
    print()
    print("| model | decision ignores the marker | map on the anatomy | faithful | accuracy |")
    print("|---|---|---|---|---|")
    def count(judged):   # None: not judged on that seed (no lung masks on real images)
        known = [v for v in judged if v is not None]
        return f"{sum(known)}/{len(known)} seeds" if known else "n/a"

    for model, goals in met.items():
        print(f"| {model} | " + " | ".join(
            count(goals[g]) for g in ("decision", "anatomy", "faithful", "accuracy")) + " |")
    if args.removal:
        print()
        print("| model | seed | every pixel blurred: p(class 1), class 0 / 1 images | curve start "
              "(p(true class)), class 0 / 1 | deletion − base, class 0 / 1 | only the lesions "
              "blurred: change of p(true class) | lesion-twin deletion − base | lesion-twin "
              "insertion − base | share of the lesion's effect left − base (n) | maps' "
              "correlation with their class template | lesion-twin deletion, own maps − "
              "template | share left, own maps − template (n) |")
        print("|" + "---|" * 12)
        for model, seed, cells in sorted(removal, key=lambda t: (t[0] != "baseline", t[0], t[1])):
            print(f"| {model} | {seed} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
