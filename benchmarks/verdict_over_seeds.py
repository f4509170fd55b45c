"""The main job's verdict over seeds, from finished run folders alone (no model is loaded).

    python experiments/pneumonia_gfsr.py --seed K --name pneumonia_gfsr_seedK   # K = 0, 1, 2
    python benchmarks/verdict_over_seeds.py runs/pneumonia_gfsr_seed0 runs/pneumonia_gfsr_seed1 \\
        runs/pneumonia_gfsr_seed2

Prints one markdown table: per model and seed, the figures the issue "Guided focus that is right
for the right reasons" judges (methods.gfsr.describe.verdict: decision, map on the anatomy,
faithfulness against the baseline, accuracy, time), and per model how many seeds meet each goal.
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


def main(argv=None) -> int:
    from gfsr_tf.methods.gfsr.describe import verdict
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders holding report.json")
    args = parser.parse_args(argv)
    rows, met = [], {}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
