"""The shortcut ablation's rows: which guided-focus configuration removes the benchmark's marker
shortcut? A row = a training setting (image size, epochs, learning rate, data) + a GFSR
configuration (None for that setting's baseline). Rows of one setting share data, seed and
initial weights. Run with `experiments/ablation_shortcut.py` (`run_ablation` below)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ...config import StudyConfig, VariantConfig
from ...presets import smoke as smoke_preset
from ...cli.common import select_rows
from .study import AblationRow, run_rows


@dataclass
class Row:
    setting: str
    relevance: dict | None = None      # None = a plain classifier (baseline or control)
    model: dict = field(default_factory=dict)
    note: str = ""
    # "baseline" (the setting's shortcut-trained reference), "control" (no shortcut in train/val:
    # marker 50/50), "oracle" (trained on the marker-free twins) or "row"
    role: str = ""
    data: dict = field(default_factory=dict)   # benchmark overrides (controls)

    def __post_init__(self):
        self.role = self.role or ("baseline" if self.relevance is None else "row")


SETTINGS: dict[str, dict] = {
    # section -> field -> value, applied to preset("benchmark")
    # The first study used lesion opacity 0.5, on which the baseline took the shortcut on some
    # runs only; those settings keep it, so their rows stay reproducible.
    "64px": {"benchmark": {"lesion_opacity": 0.5}},
    "64px-seed1": {"train": {"seed": 1}, "benchmark": {"seed": 1, "lesion_opacity": 0.5}},
    "64px-seed2": {"train": {"seed": 2}, "benchmark": {"seed": 2, "lesion_opacity": 0.5}},
    "64px-16ep": {"train": {"epochs": 16}, "benchmark": {"lesion_opacity": 0.5}},
    "64px-lr3e-4": {"train": {"learning_rate": 3e-4}, "benchmark": {"lesion_opacity": 0.5}},
    "128px": {"benchmark": {"image_size": 128, "lesion_opacity": 0.5}, "train": {"epochs": 6}},
    "no-shortcut": {"benchmark": {"marker_rate_pneumonia": 0.5, "marker_rate_normal": 0.5,
                                  "lesion_opacity": 0.5}},
    # Subtler lesions: the true signal is harder, so the baseline leans on the marker more.
    **{f"subtle{tag}": {"benchmark": {"lesion_opacity": 0.3, "seed": seed}, "train": {"seed": seed}}
       for seed, tag in ((0, ""), (1, "-seed1"), (2, "-seed2"))},
    # The causal study (issue "Guidance that removes the shortcut"): the default benchmark
    # (opacity 0.3), 16 epochs - where the no-shortcut control converges (docs/studies/shortcuts.md) - and the last
    # epoch's model, so checkpoint selection never sees the correlated validation set.
    **{f"c16{tag}": {"benchmark": {"seed": seed}, "train": {"seed": seed, "epochs": 16,
                                                             "monitor": "last"}}
       for seed, tag in ((0, ""), (1, "-seed1"), (2, "-seed2"))},
}

PAPER = {"weight": 1.0, "alpha": 0.5, "beta": 1.0, "second_order": True, "cam_class": "true",
         "mask_source": "lungs"}

ROWS: dict[str, Row] = {
    "control-no-shortcut": Row("no-shortcut", None, note="baseline on data without the shortcut: "
                               "how learnable are the lesions in this budget?"),
    "baseline": Row("64px"),
    "paper": Row("64px", PAPER, note="paper-faithful: conv3_block4_out, lambda=1, exact, true class"),
    "conv2": Row("64px", PAPER, {"target_layer": "conv2_block3_out"}),
    "conv4": Row("64px", PAPER, {"target_layer": "conv4_block6_out"}),
    "lambda3": Row("64px", {**PAPER, "weight": 3.0}),
    "lambda10-warmup2": Row("64px", {**PAPER, "weight": 10.0, "warmup_epochs": 2}),
    "first-order": Row("64px", {**PAPER, "second_order": False}),
    "predicted-class": Row("64px", {**PAPER, "cam_class": "predicted"}),
    "lesion-masks": Row("64px", {**PAPER, "mask_source": "lesions"}),
    "propagated-masks": Row("64px", {**PAPER, "mask_source": "annotations"},
                            note="paper-faithful masks: propagated from scribbles on 5 images "
                                 "per class"),
    "conv2-propagated-masks": Row("64px", {**PAPER, "mask_source": "annotations"},
                                  {"target_layer": "conv2_block3_out"}),
    "ext-input-grad": Row("64px", {**PAPER, "weight": 0.0, "input_gradient_weight": 1.0},
                          note="extension: input-gradient penalty outside the mask only"),
    "ext-gfsr+input-grad": Row("64px", {**PAPER, "input_gradient_weight": 1.0},
                               note="extension: paper GFSR + input-gradient penalty"),
    "conv2-lambda3": Row("64px", {**PAPER, "weight": 3.0}, {"target_layer": "conv2_block3_out"}),
    "conv2-lesion-masks": Row("64px", {**PAPER, "mask_source": "lesions"},
                              {"target_layer": "conv2_block3_out"}),
    "ext-conv2+input-grad": Row("64px", {**PAPER, "input_gradient_weight": 1.0},
                                {"target_layer": "conv2_block3_out"},
                                note="extension: GFSR at conv2 + input-gradient penalty"),
    "baseline@seed1": Row("64px-seed1"),
    "paper@seed1": Row("64px-seed1", PAPER),
    "conv2@seed1": Row("64px-seed1", PAPER, {"target_layer": "conv2_block3_out"}),
    "ext-input-grad@seed1": Row("64px-seed1", {**PAPER, "weight": 0.0, "input_gradient_weight": 1.0}),
    "baseline@seed2": Row("64px-seed2"),
    "paper@seed2": Row("64px-seed2", PAPER),
    "conv2@seed2": Row("64px-seed2", PAPER, {"target_layer": "conv2_block3_out"}),
    "ext-input-grad@seed2": Row("64px-seed2", {**PAPER, "weight": 0.0, "input_gradient_weight": 1.0}),
    "baseline@16ep": Row("64px-16ep"),
    "paper@16ep": Row("64px-16ep", PAPER),
    "baseline@lr3e-4": Row("64px-lr3e-4"),
    "paper@lr3e-4": Row("64px-lr3e-4", PAPER),
    # The subtle-lesion benchmark (lesion opacity 0.3): the baseline takes the shortcut on every
    # seed. Replicated rows are named <config>@subtle, <config>@subtle-seed1, ...
    **{f"{config}@subtle{tag}": Row(f"subtle{tag}", relevance, model)
       for tag in ("", "-seed1", "-seed2")
       for config, relevance, model in (
           ("baseline", None, {}),
           ("paper", PAPER, {}),
           ("conv2", PAPER, {"target_layer": "conv2_block3_out"}),
           ("conv2-propagated-masks", {**PAPER, "mask_source": "annotations"},
            {"target_layer": "conv2_block3_out"}),
           ("ext-conv2+input-grad10", {**PAPER, "input_gradient_weight": 10.0},
            {"target_layer": "conv2_block3_out"}),
           ("conv2-fused", {**PAPER, "second_order": False, "fused": True},
            {"target_layer": "conv2_block3_out"}))},
    "baseline@128px": Row("128px"),
    "paper@128px": Row("128px", PAPER),
}

NO_SHORTCUT = {"marker_rate_pneumonia": 0.5, "marker_rate_normal": 0.5}
MARKER_FREE = {"marker_rate_pneumonia": 0.0, "marker_rate_normal": 0.0}  # = the twins
CONV2 = {"target_layer": "conv2_block3_out"}
FUSED = {**PAPER, "second_order": False, "fused": True}
CONSISTENCY = {**PAPER, "weight": 0.0, "consistency_weight": 1.0}
# the study's winner (docs/studies/shortcuts.md): plain training first, then counterfactual-background consistency
RAMPED = {**CONSISTENCY, "consistency_weight": 0.1, "warmup_epochs": 8, "ramp_epochs": 4}
# (config name, relevance, model overrides, role, data overrides, note)
CAUSAL_ROWS = (
    ("baseline", None, {}, "baseline", {}, "the shortcut-trained reference"),
    ("control", None, {}, "control", NO_SHORTCUT,
     "no shortcut: marker 50/50 in train and val (the ceiling)"),
    ("oracle", None, {}, "oracle", MARKER_FREE, "trained on the marker-free twins"),
    ("paper", PAPER, {}, "row", {}, "paper-faithful: conv3, lambda 1, exact, training-mode CAM"),
    ("paper-inference-cam", {**PAPER, "cam_mode": "inference"}, {}, "row", {},
     "the paper's loss on the inference-mode CAM (the one evaluated)"),
    ("paper-live", {**PAPER, "cam_cells": "live"}, {}, "row", {},
     "the paper's loss on the live sub-grid (the cells conv4 reads)"),
    ("conv2-fused", FUSED, CONV2, "row", {}, "the former default: conv2, fused first order"),
    ("conv2-fused-wrong-mask", {**FUSED, "mask_source": "random_blobs"}, CONV2, "row", {},
     "wrong-mask control: random blobs of the lung area"),
    ("ext-a-replace", {**PAPER, "weight": 0.0, "counterfactual_rate": 0.5}, {}, "row", {},
     "extension (a): out-of-mask replacement on half the images"),
    ("ext-b-consistency", CONSISTENCY, {}, "row", {},
     "extension (b): CE(x) + CE(x~) + (z(x) - z(x~))^2"),
    ("ext-c-outside-attribution", {**PAPER, "weight": 0.0, "outside_attribution_weight": 1.0},
     CONV2, "row", {}, "extension (c): signed gradient x activation outside the mask, conv2"),
    ("ext-d-paper+consistency", {**PAPER, "consistency_weight": 1.0}, {}, "row", {},
     "extension (d): the paper's loss + (b)"),
    ("ext-b-wrong-mask", {**CONSISTENCY, "mask_source": "random_blobs"}, {}, "row", {},
     "(b) towards random blobs: grounding or regularisation?"),
    ("ext-b-propagated-masks", {**CONSISTENCY, "mask_source": "annotations"}, {}, "row", {},
     "(b) with masks propagated from scribbles on 5 images per class"),
    # The marker is a curriculum (docs/studies/shortcuts.md): from-scratch ResNet50 learns the lesions late, and
    # only while the marker carries it. Train plainly first, then remove the marker.
    ("ext-b-warmup", {**CONSISTENCY, "warmup_epochs": 8}, {}, "row", {},
     "(b) after 8 plain epochs"),
    ("ext-a-warmup", {**PAPER, "weight": 0.0, "counterfactual_rate": 1.0, "warmup_epochs": 8},
     {}, "row", {}, "(a) on every image after 8 plain epochs"),
    ("ext-a-warmup-wrong-mask", {**PAPER, "weight": 0.0, "counterfactual_rate": 1.0,
                                 "warmup_epochs": 8, "mask_source": "random_blobs"}, {}, "row",
     {}, "(a) after warm-up, keeping random blobs instead of the lungs: grounding or not?"),
    ("ext-a-warmup-propagated-masks", {**PAPER, "weight": 0.0, "counterfactual_rate": 1.0,
                                       "warmup_epochs": 8, "mask_source": "annotations"}, {},
     "row", {}, "(a) after warm-up, keeping masks propagated from 5 scribbled images per class"),
    ("ext-b-warmup-ramp", RAMPED, {}, "row", {},
     "(b) w 0.1, after 8 plain epochs, ramped up over 4 (ext-b-warmup collapsed)"),
    ("ext-b-warmup-ramp-wrong-mask", {**RAMPED, "mask_source": "random_blobs"}, {}, "row", {},
     "the winner keeping random blobs instead of the lungs: grounding or not?"),
    ("ext-b-warmup-ramp-propagated-masks", {**RAMPED, "mask_source": "annotations"}, {}, "row",
     {}, "the winner with masks propagated from 5 scribbled images per class"),
)
ROWS.update({f"{config}@c16{tag}": Row(f"c16{tag}", relevance, dict(model), note, role, dict(data))
             for tag in ("", "-seed1", "-seed2")
             for config, relevance, model, role, data, note in CAUSAL_ROWS})



def row_config(name: str, smoke: bool = False) -> StudyConfig:
    """The row's study: one variant, "model" (GFSR with the row's options, or the baseline)."""
    if name not in ROWS:
        raise ValueError(f"unknown ablation row {name!r}; known: {', '.join(ROWS)}")
    row = ROWS[name]
    # every row starts from the study defaults (8 epochs, best validation AUC, the paper's
    # layer), not from the main job's preset, so rows measured before it changed stay valid
    config = StudyConfig(name=name)
    for section, values in SETTINGS[row.setting].items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    for key, value in row.data.items():
        setattr(config.benchmark, key, value)
    for key, value in row.model.items():
        setattr(config.model, key, value)
    config.variants = (VariantConfig("model", "gfsr", dict(row.relevance))
                       if row.relevance is not None else VariantConfig("model", "baseline"),)
    if smoke:
        small = smoke_preset.get_config()
        config.benchmark = dataclasses.replace(small.benchmark, **{
            k: getattr(config.benchmark, k) for k in ("marker_rate_pneumonia", "marker_rate_normal")})
        config.train = dataclasses.replace(small.train, monitor=config.train.monitor)
        config.model.backbone = "small_cnn"  # smoke rows test the plumbing, at a tenth the cost
        config.smoke = True
    config.name = name
    return config


def baseline_of(name: str) -> str | None:
    for other, row in ROWS.items():
        if row.setting == ROWS[name].setting and row.role == "baseline":
            return other
    return None


def run_ablation(rows: list[str] | None = None, out_dir="runs", smoke: bool = False,
                 name: str = "ablation", verbose: int = 1, distribute: dict | None = None) -> dict:
    """Run the named rows (default: all) and each row's baseline; writes
    <out_dir>/<name>/results.{json,md,png}. Finished rows are read back, not retrained.
    distribute: TrainConfig fields (distribute, cpu_replicas, sync_batchnorm) for every row."""
    rows = select_rows(ROWS, ",".join(rows) if rows else None)
    needed = []  # a row's baseline always runs too: every row is read beside it
    for r in rows:
        for n in (baseline_of(r), r):
            if n and n not in needed:
                needed.append(n)
    configs = {n: row_config(n, smoke) for n in needed}
    for config in configs.values():
        for key, value in (distribute or {}).items():
            setattr(config.train, key, value)
    return run_rows({n: AblationRow(configs[n], ROWS[n].setting, ROWS[n].note, ROWS[n].role)
                     for n in needed}, out_dir, name, verbose)
