"""The methods users weigh against GFSR, side by side (issue "The methods users weigh against
GFSR"): one study per seed trains, on the same data, seed and initial weights, the main job's
baseline, paper GFSR and gfsr_plus beside RRR, RRR-GradCAM, HINT, GAIN, counterexamples (the
same masks as GFSR, after the same shared warm-up), JTT (the baseline's first epochs find the
error set; a second training upsamples it), Group DRO
(group labels on every training image) and DFR (the baseline's features, last layer retrained
on group-labelled validation images), and judges them with the main job's verdict table and
shortcut audit:

    python experiments/pneumonia_gfsr.py --preset compare_methods --seed K --name compare_methods_seedK
    python benchmarks/verdict_over_seeds.py runs/compare_methods_seed0 runs/compare_methods_seed1 ...

Each method at its paper's default setting; with `experiments/compare_methods.py --tune` each
method trains the three settings of `TUNING` and the table keeps, per seed, the one with the
highest worst-group validation accuracy. CDEP is not implemented (docs/methods/competitors.md
says why). `--dataset pneumoniamnist_shortcut --data-dir ...` runs the same on the
real-image benchmark.
"""
import dataclasses

from ..config import VariantConfig
from .benchmark import SHARED_WARMUP, get_config as main_job
from .common import make_smoke

# Fair tuning (the issue: the same budget of settings for every method, one criterion): three
# values of each method's main option - its paper's default with a tenfold spread, or values
# from its paper's own grid (JTT: lambda_up in {4, ..., 100}; Group DRO: eta in {0.001, 0.01,
# 0.1}) - chosen per seed by worst-group (class x marker) accuracy on the validation split
# (study/compare.py), never on test data. Not expanded: the baseline (nothing to tune) and DFR,
# which chooses its C itself on the half of its group-labelled images it does not retrain on
# (methods/dfr: 5 values).
TUNING = {"gfsr": ("weight", (0.3, 1.0, 3.0)), "gfsr_plus": ("weight", (0.3, 1.0, 3.0)),
          "rrr": ("weight", (1.0, 10.0, 100.0)), "rrr_gradcam": ("weight", (1.0, 10.0, 100.0)),
          "hint": ("weight", (0.1, 1.0, 10.0)), "gain": ("weight", (0.1, 1.0, 10.0)),
          "counterexamples": ("rate", (0.25, 0.5, 1.0)), "jtt": ("upweight", (4, 6, 20)),
          "group_dro": ("eta", (0.001, 0.01, 0.1))}
SETTING = "@"   # a tuned variant is named <variant>@<option>=<value>


def tuned(variants) -> tuple:
    """Every variant named in TUNING as its three settings, `<name>@<option>=<value>`, in place;
    the others as they are."""
    out = []
    for v in variants:
        if v.name not in TUNING:
            out.append(v)
            continue
        option, values = TUNING[v.name]
        out += [dataclasses.replace(v, name=f"{v.name}{SETTING}{option}={value:g}",
                                    options={**v.options, option: value}) for value in values]
    return tuple(out)


def get_config(smoke: bool = False):
    c = main_job(smoke=False)
    c.name = "compare_methods"
    # the mask-guided methods after the same shared warm-up as GFSR (make_smoke sets it to 0
    # in smoke runs)
    shared = {"warmup_epochs": SHARED_WARMUP}
    c.variants = (*c.variants,
                  *(VariantConfig(name, name, dict(shared))
                    for name in ("rrr", "rrr_gradcam", "hint", "gain", "counterexamples")),
                  # a smoke run has one epoch: JTT identifies its error set after it
                  VariantConfig("jtt", "jtt", {"identification_epochs": 1} if smoke else {}),
                  VariantConfig("group_dro", "group_dro"),
                  VariantConfig("dfr", "dfr"))
    return make_smoke(c) if smoke else c
