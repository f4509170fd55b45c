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

Each method at its paper's default setting; the per-method tuning by worst-group validation
accuracy that the issue asks for is not built yet; CDEP is not implemented
(docs/methods/competitors.md says why). `--dataset pneumoniamnist_shortcut --data-dir ...` runs the same on the
real-image benchmark.
"""
from ..config import VariantConfig
from .benchmark import SHARED_WARMUP, get_config as main_job
from .common import make_smoke


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
