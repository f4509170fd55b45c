"""SegX / SegU (Zhang, Zhu, Luo 2025): `python experiments/segx.py`.

The U-Net segmenter (lung fields on the benchmark, lesions on HAM10000) and two multi-label
classifiers without guided focus - ResNet50 and DenseNet121 with SegX's head (GAP ->
Dense(256, ReLU) -> one sigmoid per class) - trained by the generic loop with Adam, best weights
on validation loss and early stopping (patience 10). Default: the embedded benchmark (64 px),
evaluated on the decorrelated test split.
"""
from __future__ import annotations

from ..config import BenchmarkConfig, StudyConfig, TrainConfig, VariantConfig, make_smoke

EPOCHS = 12
PATIENCE = 10


def variants(backbones=("resnet50", "densenet121")) -> tuple:
    return (VariantConfig("segmenter", "segmenter"),
            *(VariantConfig(b if b != "small_cnn" else f"small_cnn_{i}", "multilabel",
                            {"backbone": b}) for i, b in enumerate(backbones)))


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
    return c
