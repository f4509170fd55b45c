"""The eye-gaze U-Net (Karargyris et al. 2021; Watanabe et al. 2022, Table 1): `unet` (decoder
trained towards the radiologist's static gaze heatmap) and `no_seg` (classification only), each
over seeds, on the embedded gaze simulation (default) or on EGD-CXR (--data-dir).

Every (row, seed) is resumable: a finished one is read back from
runs/gaze_unet/<row>@seed<k>/result.json. Writes runs/gaze_unet/results.{json,md},
table1_auc.png, panels.png and per row panels_<row>.png (input | Grad-CAM | gaze | M | decoder).

    python experiments/gaze_unet.py                       # unet, no_seg x seeds 0,1,2
    python experiments/gaze_unet.py --rows unet --seeds 0
    python experiments/gaze_unet.py --rows unet,set3-gbp,set3-deconvnet   # Watanabe et al.
    python experiments/gaze_unet.py --data-dir /data/egd-cxr   # EGD-CXR + MIMIC-CXR DICOMs
    python experiments/gaze_unet.py --smoke               # tiny, for tests
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report

from gfsr_tf.cli.common import (add_distribute_arguments, select_rows,  # noqa: E402
                                start_distribution)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="unet,no_seg", help="comma-separated: unet, no_seg, "
                        "and Watanabe et al.'s model sets set{1,2,3}-{gbp,deconvnet}, "
                        "set1-gradient, set3-gbp-w0.25, set3-gbp-w0.75")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--data-dir", help="EGD-CXR folder (master_sheet.csv, fixations.csv, "
                        "DICOMs); default: the embedded simulation")
    parser.add_argument("--out", default="runs", help="output root (default: runs)")
    parser.add_argument("--name", help="study folder (default: gaze_unet[_smoke])")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests (under a minute per row)")
    add_distribute_arguments(parser)
    args = parser.parse_args(argv)
    try:
        from gfsr_tf.presets.gaze_unet import ROWS, get_config
        rows = select_rows(ROWS, args.rows)
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        if args.data_dir and not Path(args.data_dir).is_dir():
            raise FileNotFoundError(f"data directory not found: {args.data_dir}")
        configs = [get_config(args.smoke, row, seed, args.data_dir) for row in rows
                   for seed in seeds]
        where = start_distribution(args, *(c.train for c in configs))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from gfsr_tf.study.data import load_data
    from gfsr_tf.methods.gaze_unet.study import plot_aucs, plot_panels, run_gaze_rows
    from gfsr_tf.training.distribute import finish_worker
    name = args.name or ("gaze_unet_smoke" if args.smoke else "gaze_unet")
    out = run_gaze_rows(configs, where, name)
    root = Path(where) / name
    plot_aucs(out["results"], root / "table1_auc.png")
    first = configs[0]
    test = load_data(first)["test"]
    plot_panels(root, test, root / "panels.png", first.name)
    for row, config in zip(rows, configs[::len(seeds)]):   # Figures 9-11: per row, first seed
        plot_panels(root, test, root / f"panels_{row}.png", config.name)
    print(out["markdown"])
    print(f"\nwritten: {root}/results.md, table1_auc.png, panels.png, panels_<row>.png")
    finish_worker(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
