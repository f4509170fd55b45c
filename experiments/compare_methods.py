"""The methods users weigh against GFSR, side by side: the `compare_methods` preset (baseline,
paper GFSR, gfsr_plus, RRR, RRR-GradCAM, HINT, GAIN, counterexamples, JTT, Group DRO, DFR) on
the same data, seed and initial weights, one resumable run folder per seed, then one table and
one figure over the seeds:

    python experiments/compare_methods.py --seeds 0,1,2
    python experiments/compare_methods.py --seeds 0 --dataset pneumoniamnist_shortcut \\
        --data-dir ../shared/data/pneumoniamnist/pneumoniamnist.npz

writes runs/<name>_seed<K>/ (each a main-job run folder: report.json, summary.md, report.html)
and runs/<name>/results.{md,json,png}. Rerun the same command to resume: a finished seed's
report is read back, a finished variant of an unfinished seed is re-evaluated, not retrained.
--variants baseline,rrr,... runs a subset (the baseline must be among them: every figure is
read against it). --tune trains each method at the three settings of
`presets/compare_methods.py:TUNING` (about 2.7x the time) and keeps, per seed, the setting with
the highest worst-group (class x marker) validation accuracy; the table says which.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report

from gfsr_tf.cli import USER_ERRORS  # noqa: E402
from gfsr_tf.cli.common import (add_study_arguments, import_tensorflow_quietly,  # noqa: E402
                                study_config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(parser, default_preset="compare_methods")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--tune", action="store_true",
                        help="each method at 3 settings, chosen by worst-group validation "
                             "accuracy (about 2.7x the time)")
    args = parser.parse_args(argv)

    def run(args):
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            seeds = []
        if not seeds:
            raise ValueError(f"--seeds {args.seeds}: expected comma-separated integers")
        if args.seed is not None:
            raise ValueError("use --seeds for this experiment, not --seed")
        configs = []
        for seed in seeds:
            args.seed = seed
            config = study_config(args)
            if "baseline" not in [v.name for v in config.variants]:
                raise ValueError("--variants must include baseline: every figure is read "
                                 "against it")
            if args.tune:
                from gfsr_tf.presets.compare_methods import tuned
                config.variants = tuned(config.variants)
            name = args.name or config.name
            config.name = f"{name}_seed{seed}"
            configs.append(config)
        import_tensorflow_quietly()
        from gfsr_tf.study import run_study
        from gfsr_tf.study.compare import finished_report, write_comparison
        reports = [finished_report(c, args.out) or run_study(c, args.out,
                                                              verbose=0 if args.quiet else 1)
                   for c in configs]
        name = args.name or configs[0].name.rsplit("_seed", 1)[0]
        data = f" on {configs[0].dataset}" if configs[0].data_dir else " on the embedded benchmark"
        which = "seeds" if len(seeds) > 1 else "seed"
        write_comparison(reports, Path(args.out) / name,
                         f"Methods side by side{data}, {which} {args.seeds}")
        print((Path(args.out) / name / "results.md").read_text())
        return 0

    try:
        return run(args)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
