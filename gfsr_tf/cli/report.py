"""gfsr report: re-render a run folder's summary.md, report.html and figures from report.json
and the saved maps (no model is loaded; the .keras files may be gone)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("report", help="re-render summary.md, report.html and the figures of a "
                       "run folder from its report.json")
    p.add_argument("run_dir", help="a run folder, e.g. runs/pneumonia_gfsr")
    p.set_defaults(func=run)


def run(args) -> Path:
    from ..report import render_run
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    render_run(run_dir)
    print(f"report: {run_dir / 'report.html'}")
    return run_dir
