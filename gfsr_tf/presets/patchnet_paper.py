"""MedicalPatchNet with the paper's settings (a GPU study): 512 px, P = 8 (p = 64 px),
EfficientNetV2-S, batch 16 images (1,024 patches), AdamW (weight decay 0.01), OneCycle peak 1e-4
over 20 epochs, BCE on one sigmoid per class. Maps for the tables at o = 1 take 4,096 shifted
passes per image; `experiments/patchnet.py --preset patchnet_paper` computes o = p and p/4.

Not reproduced here: the paper's random-resized-crop (50-100 % area), +-5 degree rotation and
brightness x[0.7, 1.3] augmentation (the house's loop has no augmentation stage yet) and its
grayscale [0, 1] input (the house feeds 3-channel ResNet/ImageNet-style preprocessed pixels).
"""
from __future__ import annotations

from ..config import TrainConfig
from .patchnet import get_config as _patchnet, variants


def get_config(smoke: bool = False):
    c = _patchnet(smoke)
    if smoke:
        return c
    c.name = "patchnet_paper"
    c.benchmark.image_size = 512
    c.model.multi_label = True
    c.train = TrainConfig(epochs=20, batch_size=16, learning_rate=1e-4, optimizer="adamw",
                          weight_decay=0.01, lr_schedule="onecycle", monitor="last")
    c.variants = variants(8, "efficientnetv2s")
    return c
