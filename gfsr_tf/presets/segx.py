"""SegX / SegU (Zhang, Zhu, Luo 2025): `python experiments/segx.py`.

The U-Net segmenter (lung fields on the benchmark, lesions on HAM10000) and two multi-label
classifiers without guided focus - ResNet50 and DenseNet121 with SegX's head (GAP ->
Dense(256, ReLU) -> one sigmoid per class) - trained by the generic loop with Adam, best weights
on validation loss and early stopping (patience 10); the segmenter for 6 epochs, the classifiers
for 12. Default: the embedded benchmark (64 px), evaluated on the decorrelated test split, with
Grad-CAM at stride-8 layers (SegX's grid resolution) and at the last blocks.
"""
from __future__ import annotations

from ..config import BenchmarkConfig, StudyConfig, TrainConfig, VariantConfig
from .common import make_smoke

EPOCHS = 12
SEGMENTER_EPOCHS = 6      # lung fields: validation Dice 0.99 after 3 epochs (docs/methods/segx.md)
PATIENCE = 10
# Grad-CAM layers with SegX's grid at 64 px: stride 8 (8 x 8; SegX's last block at 224 px is
# 7 x 7). The backbones' last blocks (2 x 2 here) are reported beside them as gradcam_last.
STRIDE8 = {"resnet50": "conv3_block4_out", "densenet121": "pool3_relu"}


def variants(backbones=("resnet50", "densenet121")) -> tuple:
    return (VariantConfig("segmenter", "segmenter", {"epochs": SEGMENTER_EPOCHS}),
            *(VariantConfig(b if b != "small_cnn" else f"small_cnn_{i}", "multilabel",
                            {"backbone": b, "gradcam_layer": STRIDE8.get(b)})
              for i, b in enumerate(backbones)))


def get_config(smoke: bool = False) -> StudyConfig:
    c = StudyConfig(name="segx")
    c.train = TrainConfig(epochs=EPOCHS, batch_size=32, learning_rate=1e-3, monitor="val_loss",
                          early_stopping_patience=PATIENCE)
    c.variants = variants()
    c.evaluators = ()
    if smoke:
        c = make_smoke(c)
        c.train.monitor, c.train.early_stopping_patience = "val_loss", PATIENCE
        c.benchmark = BenchmarkConfig(image_size=32, n_train=16, n_val=8, n_test=8)
        c.variants = variants(("small_cnn", "small_cnn"))
        c.variant("segmenter").options["epochs"] = None
    return c
