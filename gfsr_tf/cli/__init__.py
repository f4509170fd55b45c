"""The `gfsr` command line: train | masks | evaluate | audit | explain | export | report.

    gfsr train --preset benchmark                       # = python experiments/pneumonia_gfsr.py
    gfsr masks --images xrays/ --annotations marks/ --out masks/
    gfsr evaluate --model runs/pneumonia_gfsr/gfsr/best.keras
    gfsr explain --model runs/pneumonia_gfsr/gfsr/best.keras my_xray.png --out heatmaps/
    gfsr export --model runs/pneumonia_gfsr/gfsr/best.keras --out serving/gfsr/1
    gfsr audit --model runs/pneumonia_gfsr/gfsr/best.keras   # does it react to an "R"?
    gfsr report runs/pneumonia_gfsr                     # re-render summary, html and figures

Every command takes --help. Bad input ends with exit code 1 and a one-line reason. TensorFlow is
imported only once a command runs (so --help is instant).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = ("train", "masks", "evaluate", "audit", "explain", "export", "report")
# errors a user can fix from the message alone: one line, exit code 1
USER_ERRORS = (FileNotFoundError, ValueError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gfsr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def run(argv=None):
    """Parse and run one command; returns what the command returns (for Python callers)."""
    args = build_parser().parse_args(argv)
    from .common import import_tensorflow_quietly
    import_tensorflow_quietly()  # after parsing: --help and option errors stay instant
    return args.func(args)


def main(argv=None) -> int:
    """The console script: exit code 0 on success, 1 with `error: <reason>` on bad input."""
    try:
        run(argv)
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
