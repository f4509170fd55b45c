"""The eye-gaze U-Net (Karargyris et al. 2021, the baseline of Watanabe et al. 2022, Table 1):
`unet` (decoder trained towards the static gaze heatmap, gamma 0.41731) and `no_seg` (the
classification-only model), each a row of `experiments/gaze_unet.py`, on the embedded gaze
simulation by default or on EGD-CXR (`--data-dir`).

The reference's settings: Adam lr 0.0090552 (no_seg 0.006486), the cyclic triangular2 schedule,
gradients clipped to [-0.1, 0.1], batch 32, 35 epochs, 224 px, ImageNet weights. On 2 CPU cores
the simulation runs at 64 px (the U-Net takes multiples of 32) for `SIM_EPOCHS` epochs without
pretrained weights (none can be downloaded here); real data keeps 224 px and 35 epochs.
"""
from __future__ import annotations

from ..config import BenchmarkConfig, StudyConfig, TrainConfig, VariantConfig
from .common import make_smoke

# The reference's settings (Watanabe et al. 2022, from Karargyris et al.'s tuning). Kept here,
# not in methods.gaze_unet, so the experiment checks its options before TensorFlow loads.
PAPER = {"unet": {"gamma": 0.41731, "learning_rate": 0.0090552},
         "no_seg": {"gamma": 1.0, "learning_rate": 0.006486}}

ROWS = {"unet": {"gamma": PAPER["unet"]["gamma"], "decoder": True},
        "no_seg": {"gamma": 1.0, "decoder": False}}
# Watanabe et al.'s model sets (methods.gaze_unet): the generator's map M in the loss, with the
# U-Net's gamma and learning rate
GENERATORS = {"gbp": "guided_backprop", "deconvnet": "deconvnet", "gradient": "gradient"}
for _set in (1, 2, 3):
    for _short, _rule in GENERATORS.items():
        if _short != "gradient" or _set == 1:
            ROWS[f"set{_set}-{_short}"] = {**ROWS["unet"], "model_set": _set, "rule": _rule}
for _w in (0.25, 0.75):
    ROWS[f"set3-gbp-w{_w}"] = {**ROWS["set3-gbp"], "set3_weight": _w}
SIM_EPOCHS = 12


def get_config(smoke: bool = False, row: str = "unet", seed: int = 0,
               data_dir: str | None = None) -> StudyConfig:
    if row not in ROWS:
        raise ValueError(f"unknown gaze row {row!r}; choose one of {', '.join(ROWS)}")
    c = StudyConfig(name=f"{row}@seed{seed}", dataset="gaze_simulation", data_dir=data_dir)
    real = data_dir is not None
    c.benchmark = BenchmarkConfig(image_size=224 if real else 64, n_train=480, n_val=120,
                                  n_test=120, seed=0)     # the data stay fixed over seeds
    c.train = TrainConfig(epochs=35 if real else SIM_EPOCHS, batch_size=32, seed=seed,
                          learning_rate=PAPER.get(row, PAPER["unet"])["learning_rate"],
                          lr_schedule="triangular2", lr_step_epochs=5, clip_value=0.1)
    c.variants = (VariantConfig("model", "gaze_unet", dict(ROWS[row])),)
    c.evaluators = ("classification", "gaze")
    if smoke:
        c = make_smoke(c)
        c.train.learning_rate = PAPER.get(row, PAPER["unet"])["learning_rate"]
        c.train.lr_schedule, c.train.clip_value = "triangular2", 0.1
    return c
