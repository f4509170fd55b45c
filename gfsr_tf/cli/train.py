"""gfsr train: run a study (default: baseline vs GFSR on the embedded benchmark)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import USER_ERRORS
from .common import add_study_arguments, start_distribution, study_config


def add_parser(sub):
    p = sub.add_parser("train", help="train the study's variants (baseline, GFSR), evaluate, "
                       "write the report")
    add_study_arguments(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    config = study_config(args)       # bad options fail here, before TensorFlow loads (~4 s)
    out = start_distribution(args, config.train)
    from ..study import run_study
    from ..training.distribute import finish_worker
    report = run_study(config, out, verbose=0 if args.quiet else 1)
    summary = Path(out) / config.name / "summary.md"
    print(summary.read_text())
    print(f"report: {summary.parent / 'report.html'}")
    finish_worker(out)
    return report


def run_experiment(default_preset: str, description: str, argv=None,
                   gfsr_options: bool = True) -> dict:
    """An experiment script's main: the study options with its preset as default (without the
    GFSR-only ones where `gfsr_options` is False), then `gfsr train`. Bad input exits with code
    1 and a one-line reason."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(p, default_preset, gfsr_options)
    args = p.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
