"""MedicalPatchNet vs the same network on the whole image (P = 1, the paper's baseline), same
data, seed and budget: `python experiments/patchnet.py`.

Default: the embedded benchmark at 128 px with P = 4 (p = 32 px, the smallest input the Keras
backbones accept), ResNet50, AdamW + OneCycle (the paper's optimiser and schedule), both models
selected on the last epoch; the whole run took 17.5 min on 2 CPU cores (docs/methods/patchnet.md).
Real data (`--data-dir`): HAM10000 (lesion masks, 7 classes) or PneumoniaMNIST / Kermany
(classification only) at the loader's size.
"""
from __future__ import annotations

from ..config import BenchmarkConfig, StudyConfig, TrainConfig, VariantConfig
from .common import make_smoke

PATCHES = 4
EPOCHS = 6


def variants(patches: int = PATCHES, backbone: str = "resnet50") -> tuple:
    return (VariantConfig("baseline", "patchnet", {"patches": 1, "backbone": backbone}),
            VariantConfig("patchnet", "patchnet", {"patches": patches, "backbone": backbone}))


def get_config(smoke: bool = False) -> StudyConfig:
    c = StudyConfig(name="patchnet")
    c.benchmark = BenchmarkConfig(image_size=128, n_train=480, n_val=120, n_test=240)
    c.train = TrainConfig(epochs=EPOCHS, batch_size=16, learning_rate=1e-3, optimizer="adamw",
                          lr_schedule="onecycle", monitor="last")
    c.variants = variants()
    c.evaluators = ("classification", "robustness", "audit", "maps", "examples")
    if smoke:
        c = make_smoke(c)
        c.benchmark = BenchmarkConfig(image_size=64, n_train=16, n_val=8, n_test=8)
        c.train.optimizer, c.train.lr_schedule = "adamw", "onecycle"
        c.variants = variants(2, "small_cnn")
    return c
