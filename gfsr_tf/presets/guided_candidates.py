"""The main job's candidates for the guided default (issue "Guided focus that is right for the
right reasons"): the baseline, paper GFSR and GFSR's loss combined with a decision constraint in
several ways, all from the baseline's shared 6-epoch warm-up on the same data and seed. Each
guided variant is one resumable folder of the run; the chosen one became `gfsr_plus` in the
`benchmark` preset. Reproduce a row: python experiments/pneumonia_gfsr.py --preset
guided_candidates --seed K --name guided_candidates_seedK (--variants baseline,<candidate> for
one candidate beside its baseline)
"""
from ..config import VariantConfig
from .benchmark import EPOCHS_BEFORE_ROUND_7, GFSR, get_config as main_job

# every row is round 3's `gfsr_plus` or a variation of it, written as that variation; round 5's
# `plus-lambda3-negative-evidence` became the main job's `gfsr_plus` (a test holds them equal)
ROUND3_PLUS = {**GFSR, "cam_mode": "inference", "consistency_weight": 0.1, "ramp_epochs": 3,
               "bn_recalibration": True}
DELAYED = {"ramp_epochs": 2, "consistency_delay_epochs": 2}
HELD_BN = {**ROUND3_PLUS, "batchnorm": "held"}
CANDIDATES = {
    # = round 3's gfsr_plus: the paper's loss on the CAM that is evaluated (inference mode, running
    # BatchNorm statistics) + counterfactual consistency, both ramped together over 3 epochs
    "plus-inference-cam": dict(ROUND3_PLUS),
    # the same, the consistency starting 2 epochs after the relevance loss (separate ramps)
    "plus-inference-cam-delayed": {**ROUND3_PLUS, **DELAYED},
    # round 2 (seed 0 missed the map goals: lung hit 0.87-0.88 < 0.90, 1.3-1.8 % empty maps):
    # a stronger pull of the CAM towards the lungs. Seed 0: every goal but faithfulness met;
    # seed 1: the inference-mode network collapsed (validation AUC 0.07 at epoch 11, test
    # accuracy 0.45), so gfsr_plus stays at lambda 1 (docs/studies/right-reasons.md)
    "plus-inference-cam-lambda3": {**ROUND3_PLUS, "weight": 3.0},
    "plus-inference-cam-delayed-lambda3": {**ROUND3_PLUS, **DELAYED, "weight": 3.0},
    # round 4 (the re-estimation after training moved the maps the loss had trained: lung hit
    # 0.87 -> 0.75 on seed 0). BatchNorm frozen on statistics re-estimated at each guided
    # epoch's start, one pass per step: diverged on seed 0 in its second guided epoch (CE 70,
    # validation AUC 0.5) - kept as the measured failure
    "plus-frozen-bn": {**ROUND3_PLUS, "batchnorm": "frozen", "bn_recalibration": False,
                       "cam_mode": "training"},
    # the statistics re-estimated at each guided epoch's start and held through it (the passes
    # still normalise with batch statistics): the inference-mode CAM the loss trains is
    # computed with clean-image statistics, as at evaluation; without and with the
    # negative-evidence term against empty maps. Measured: at lambda 3 seed 1 met every goal,
    # seeds 0 and 2 did not (marker AUC 0.64 / 0.69); not adopted (right-reasons.md, round 4)
    "plus-held-bn": HELD_BN,
    "plus-held-bn-negative-evidence": {**HELD_BN, "negative_evidence_weight": 1.0},
    "plus-held-bn-lambda3": {**HELD_BN, "weight": 3.0},
    # round 5: held statistics at lambda 3 kept part of the marker on seeds 0 and 2 (AUC 0.64 /
    # 0.69) while lambda 1 did not (0.54 / 0.62): three times the pull on the map against the
    # same decision constraint. The consistency weight scaled with lambda (0.3 = 3 x gfsr_plus's
    # 0.1), still ramped over 3 epochs. Seed 0: the decision let go of the marker (AUC 0.547)
    # but 57 % of the maps were all zero (lung hit 0.378); ten times (1.0) was stopped unrun.
    # With the negative-evidence term, which pulls an all-negative map up inside the mask:
    "plus-held-bn-lambda3-consistency3x": {**HELD_BN, "weight": 3.0, "consistency_weight": 0.3},
    "plus-held-bn-lambda3-consistency3x-negative-evidence": {
        **HELD_BN, "weight": 3.0, "consistency_weight": 0.3, "negative_evidence_weight": 1.0},
    # the negative-evidence term on round 3's gfsr_plus (batch statistics, re-estimated after
    # training), at lambda 1 and 3 (lambda 3 met the decision and accuracy goals on all three
    # seeds in round 3 but left 10 and 45 % of the maps empty on seeds 1 and 2). Round 5, at
    # lambda 3: no empty map on seeds 1 and 2 (1.3 % on seed 0), decision and accuracy goals on
    # all three seeds, faithful on two, lung hit 0.887 / 0.897 / 0.840 (goal 0.90): the best
    # goal count of every row, now the main job's gfsr_plus. Round 7 trained it (and the
    # baseline) 18 epochs (--epochs 18): lung hit 0.950 / 0.958 / 0.930, goals decision 3,
    # anatomy 2, faithful 2, accuracy 3 - the main job's epochs since
    "plus-negative-evidence": {**ROUND3_PLUS, "negative_evidence_weight": 1.0},
    "plus-lambda3-negative-evidence": {**ROUND3_PLUS, "weight": 3.0,
                                       "negative_evidence_weight": 1.0},
    # round 6: that row's lung misses (seed 2: 64 of 400) are pneumonia images it is unsure of,
    # whose true-class map peaks in the image's top-left corner - where the other class's map
    # peaks on every image. GFSR's loss also on that counterfactual map (the evidence against
    # the class), at one third of lambda. Seed 2: worse on every verdict figure (lung hit 0.767,
    # 9 % empty maps, marker AUC 0.604): a lone positive border cell of a max-normalised map gets
    # no gradient from GFSR's loss, so the network emptied maps instead; seeds 0-1 not run
    # (docs/studies/right-reasons.md, round 6)
    "plus-lambda3-negative-evidence-counter-evidence": {
        **ROUND3_PLUS, "weight": 3.0, "negative_evidence_weight": 1.0,
        "counter_evidence_weight": 1.0},
    # round 7, the same shortfall from two sides, at 12 epochs: (a) the share of the Grad-CAM's
    # evidence of either sign outside the mask penalised (it has a gradient on that lone border
    # cell and on the border's negative evidence); (b) the negative-evidence term three times as
    # strong (scaled with lambda), which pulls the true class's evidence up inside the lungs -
    # GFSR's loss can only move a map once some cell there is positive. Seed 2: lung hit 0.815
    # (a: the corner went, 6.5 % of the maps emptied) and 0.850 (b: correlated accuracy lost);
    # the misjudged pneumonia images' maps missed the lungs in every row. Seeds 0-1 not run
    "plus-lambda3-negative-evidence-outside-evidence": {
        **ROUND3_PLUS, "weight": 3.0, "negative_evidence_weight": 1.0,
        "outside_evidence_weight": 1.0},
    "plus-lambda3-negative-evidence3x": {**ROUND3_PLUS, "weight": 3.0,
                                         "negative_evidence_weight": 3.0},
    # round 8, the time goal (a guided step of the main job's gfsr_plus costs 3.6-3.8x a baseline
    # step on 2 cores: the inference-mode Grad-CAM's extra forward and double backward run on
    # the doubled counterfactual batch): the map terms on the clean images only (their twins
    # keep the CE and the consistency; 0.78x gfsr_plus's step), and the same with the Grad-CAM
    # channel weights as constants (first order: no double backward; 0.61x). At 18 epochs
    # (--epochs 18), the main job's. Seed 0 (guided epoch 2.79x / 2.30x the baseline's against
    # gfsr_plus's 3.63x, measured in one run): both kept the decision and the accuracy but lost
    # the map - lung hit 0.887 (CAM-fooling 0.030) and 0.593 (30 % all-zero maps) where
    # gfsr_plus gave 0.950 (0.015) on the same seed and machine; not carried to seeds 1-2, not
    # adopted (docs/studies/right-reasons.md, round 8)
    "plus-lambda3-negative-evidence-clean-cam": {
        **ROUND3_PLUS, "weight": 3.0, "negative_evidence_weight": 1.0, "cam_images": "clean"},
    "plus-lambda3-negative-evidence-clean-cam-first-order": {
        **ROUND3_PLUS, "weight": 3.0, "negative_evidence_weight": 1.0, "cam_images": "clean",
        "second_order": False},
    # round 10, which map the loss trains and the report evaluates: the main job's gfsr_plus
    # with GFSR's loss on the inference-mode LayerCAM instead of the Grad-CAM (extension; the
    # maps of its report, its explanations and `gfsr explain` read LayerCAM too). Why: at conv3
    # the Grad-CAM's channel-mean weights cancel, and LayerCAM of the same untrained-for-it
    # models already pointed into the lungs (../shared/notes/right-reasons.md). Everything
    # else as gfsr_plus (the negative-evidence term still reads the Grad-CAM before its ReLU)
    "plus-lambda3-negative-evidence-layercam": {
        **ROUND3_PLUS, "weight": 3.0, "negative_evidence_weight": 1.0, "saliency": "layercam"},
    # round 11, the map that is one lung template (round 10): GFSR's loss pulls every cell of the
    # map towards the blurred lung mask, which is itself nearly one template, so the map cannot
    # follow an image's lesion inside the lungs. Here GFSR's loss is off and only where the
    # evidence lies is constrained: the share of the Grad-CAM's evidence of either sign outside
    # the mask penalised at lambda's 3 (round 7's term), the negative-evidence term against
    # empty maps, the same decision constraint. Inside the lungs the map is the network's own.
    # Not `gfsr` (no GFSR loss): an extension, its heading says so. Seeds 0-2: the map follows
    # the image (own - template lesion-twin deletion +0.001 / -0.149 / -0.087: the first guided
    # maps to beat their template) but its pneumonia maps sit on the lung fields' edges, off
    # the lesions (lung hit 0.735 / 0.532 / 0.705, lesion hit 0.02 / 0.00 / 0.06): the anatomy
    # goal missed on every seed; not adopted
    "outside-evidence3-negative-evidence": {
        **ROUND3_PLUS, "weight": 0.0, "negative_evidence_weight": 1.0,
        "outside_evidence_weight": 3.0},
    # the same with the outside share at 10: does a stronger pull keep the map image-dependent
    # and bring it onto the lungs? Seed 2: no - 21 % empty maps, lung hit 0.562, marker AUC
    # 0.632 (docs/studies/right-reasons.md, round 11)
    "outside-evidence10-negative-evidence": {
        **ROUND3_PLUS, "weight": 0.0, "negative_evidence_weight": 1.0,
        "outside_evidence_weight": 10.0},
}


def get_config(smoke: bool = False):
    c = main_job(smoke=False)
    c.name = "guided_candidates"
    c.train.epochs = EPOCHS_BEFORE_ROUND_7   # its tables' setting (benchmark.py)
    c.variants = (VariantConfig("baseline", "baseline"), VariantConfig("gfsr", "gfsr", dict(GFSR)),
                  *(VariantConfig(name, "gfsr", dict(options))
                    for name, options in CANDIDATES.items()))
    return c
