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
from .benchmark import EPOCHS_BEFORE_ROUND_7, SHARED_WARMUP, get_config as main_job
from .common import make_smoke

# Fair tuning (the issue: the same budget of settings for every method, one criterion): three
# values of each method's main option - its default as the preset trains it (the variant keeps
# its plain name, so a run at the defaults resumes into a tuned one) and two more, a tenfold
# spread or values from its paper's own grid (JTT: lambda_up in {4, ..., 100}; Group DRO: eta in
# {0.001, 0.01, 0.1}) - chosen per seed by worst-group (class x marker) accuracy on the
# validation split (study/compare.py), never on test data. Not expanded: the baseline (nothing
# to tune) and DFR, which chooses its C itself on the half of its group-labelled images it does
# not retrain on (methods/dfr: 5 values). variant: (option, its default, the other two values)
TUNING = {"gfsr": ("weight", 1.0, (0.3, 3.0)), "gfsr_plus": ("weight", 3.0, (1.0, 10.0)),
          "rrr": ("weight", 10.0, (1.0, 100.0)), "rrr_gradcam": ("weight", 10.0, (1.0, 100.0)),
          "hint": ("weight", 1.0, (0.1, 10.0)), "gain": ("weight", 1.0, (0.1, 10.0)),
          "counterexamples": ("rate", 1.0, (0.25, 0.5)), "jtt": ("upweight", 6, (4, 20)),
          "group_dro": ("eta", 0.01, (0.001, 0.1))}
SETTING = "@"   # a tuned variant at a setting other than its default: <variant>@<option>=<value>


def setting_of(name: str) -> str:
    """The setting a variant of a tuned run trained with, from its name: "weight=3", or
    "weight=1 (default)" for the plain-named default; "default" for an untuned variant."""
    if SETTING in name:
        return name.split(SETTING, 1)[1]
    if name in TUNING:
        option, default, _ = TUNING[name]
        return f"{option}={default:g} (default)"
    return "default"


def tuned(variants) -> tuple:
    """Every variant named in TUNING followed by its two other settings, named
    `<name>@<option>=<value>`; the others as they are."""
    out = []
    for v in variants:
        out.append(v)
        if v.name in TUNING:
            option, _, others = TUNING[v.name]
            out += [dataclasses.replace(v, name=f"{v.name}{SETTING}{option}={value:g}",
                                        options={**v.options, option: value})
                    for value in others]
    return tuple(out)


def get_config(smoke: bool = False):
    c = main_job(smoke=False)
    c.name = "compare_methods"
    c.train.epochs = EPOCHS_BEFORE_ROUND_7   # its tables' setting (benchmark.py)
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
