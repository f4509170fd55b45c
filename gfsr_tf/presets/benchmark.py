"""The main job: baseline, paper GFSR and the guided default `gfsr_plus` on the embedded shortcut
benchmark (64 px, 18 epochs, same data, seed and initial weights; last-epoch models, so that
checkpoint selection never sees the correlated validation set).

  - `gfsr`: GFSR's loss as the paper defines it; it starts from the baseline's state after its
    first 6 plain epochs (`train.share_warmup`) instead of training them again - the one setting
    the report names as changed (`--preset paper` is faithful throughout);
  - `gfsr_plus` (extensions, named so in its report heading): after the same shared warm-up,
    GFSR's loss at lambda 3 on the inference-mode Grad-CAM + a penalty on negative evidence
    inside the mask (an all-zero map gets no gradient from GFSR's loss) + logit consistency
    under counterfactual backgrounds (CE(x) + CE(x~) + w (z(x) - z(x~))^2, w ramped 0 -> 0.1
    over 3 epochs; full weight at once collapsed the network), then BatchNorm running statistics
    re-estimated on the training images (the guided step's extra training-mode passes leave
    them off). Chosen by the guided-candidates study, round 5; 18 epochs since round 7
    (docs/studies/right-reasons.md).
On real data without lung masks the guided models use masks propagated from `--annotations`,
else from lung-field template annotations.
"""
from ..config import GFSR_PAPER_LOSS, GFSR_PLUS_ADDITIONS, StudyConfig, VariantConfig
from .common import make_smoke

SHARED_WARMUP = 6
# `gfsr`: GFSR's loss as the paper defines it (lambda 1, alpha 0.5, beta 1, the exact second-order
# step, the training-mode Grad-CAM of the true class at conv3_block4_out, towards the lung
# fields). One setting changed, said in the report: it starts from the baseline's first 6 epochs
# (`train.share_warmup`) instead of training them again; `--preset paper` is faithful throughout.
GFSR = {**GFSR_PAPER_LOSS, "mask_source": "lungs", "warmup_epochs": SHARED_WARMUP}
# `gfsr_plus`: the guided default, GFSR's loss + a decision constraint (an extension): chosen by
# the guided-candidates study (presets/guided_candidates.py; docs/studies/right-reasons.md)
GFSR_PLUS = {**GFSR, **GFSR_PLUS_ADDITIONS}
# the former guided default (relevance weight 0: consistency only), kept for old runs' readers
REMOVES_THE_MARKER = {"weight": 0.0, "consistency_weight": 0.1, "warmup_epochs": 6,
                      "ramp_epochs": 3}
# 18 since round 7 (docs/studies/right-reasons.md): at 12, gfsr_plus's lung misses were the
# pneumonia images it misjudged (45 on seed 2), whose true-class maps never point into the lungs;
# six more epochs for all three models (the same schedule: a constant learning rate, the warm-up
# unchanged) left 17 on seed 2 and lifted its lung hit from 0.84 to 0.93, at ~1.5x the time
EPOCHS = 18
# the studies built on this preset whose tables were measured before round 7 (the comparison,
# the real-X-ray benchmark, the guided candidates) keep 12 so that their documented commands
# reproduce their rows; at 18 they are not measured
EPOCHS_BEFORE_ROUND_7 = 12


def get_config(smoke: bool = False) -> StudyConfig:
    c = StudyConfig()
    c.train.epochs = EPOCHS
    c.train.monitor = "last"
    c.variants = (VariantConfig("baseline", "baseline"), VariantConfig("gfsr", "gfsr", dict(GFSR)),
                  VariantConfig("gfsr_plus", "gfsr", dict(GFSR_PLUS)))
    c.annotation_template = "lung_fields"   # used only on real data without lung masks
    return make_smoke(c) if smoke else c
