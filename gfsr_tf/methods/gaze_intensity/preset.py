"""Pham et al.'s prompt-controlled gaze-intensity heatmaps and the classifier that sees only the
gazed pixels (`experiments/gaze_intensity.py`), on the embedded gaze simulation by default or on
EGD-CXR (`--data-dir`).

Rows (each resumable under runs/gaze_intensity/<row>@seed<k>/):
  ours, ours-C, ours-L, ours-R   the predictor on setting M (the paper's model), and trained per
                                 setting (Table 5)
  l2-only, ce-dice               Table 6's loss ablations
  no-alpha                       Table 7's ablation (feature mean instead of alpha)
  clf-pred, clf-gt               the classifier on images gated by the `ours` prediction / by the
                                 ground-truth map (Tables 4, 8)
  clf-full                       the classifier on full images, one per setting C, L, R (Table 4);
                                 its Grad-CAM and Grad-CAM++ are Table 3's CAM comparators
  unet                           the gaze foundation's U-Net per setting C, L, R (decoder towards
                                 the setting's intensity maps): its decoder and Grad-CAM are
                                 Table 3's Karargyris et al. rows, its accuracy Table 4's
The paper's settings: AdamW lr 1e-4, weight decay 1e-4, batch 16, 60,000 iterations, 224 px,
BiomedCLIP frozen. Here (2 CPU cores, nothing downloadable): 64 px with patch 8, random-
initialised and trainable EfficientNet-B0 taps, `PREDICTOR_EPOCHS` epochs; real data keeps
224 px (patch 16).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .study import ROWS   # the rows, defined with the study

__all__ = ["ROWS", "GazeIntensityStudy", "get_config"]

MASKINGS = ("gated", "soft")
PREDICTOR_EPOCHS = 8


@dataclass
class GazeIntensityStudy:
    name: str = "gaze_intensity"
    seed: int = 0
    data_dir: str | None = None
    image_size: int = 64
    n_train: int = 480                # images (each gives up to 3 prompted samples)
    n_val: int = 120
    n_test: int = 120
    predictor: dict = field(default_factory=dict)     # gaze_intensity method options
    predictor_epochs: int = PREDICTOR_EPOCHS
    classifier_epochs: int = 8
    unet_epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    masking: str = "gated"            # x * a * [a > 0.5] ("soft": x * a, the paper's literal)
    classifier_backbone: str = "resnet50"
    weights: str | None = "auto"
    smoke: bool = False
    # tf.distribute settings of every training row (TrainConfig's distribute, cpu_replicas,
    # sync_batchnorm); empty: one device
    distribute: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.masking not in MASKINGS:
            raise ValueError(f"masking must be one of {', '.join(MASKINGS)}, got "
                             f"{self.masking!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def get_config(smoke: bool = False, seed: int = 0,
               data_dir: str | None = None) -> GazeIntensityStudy:
    if data_dir is not None:
        return GazeIntensityStudy(seed=seed, data_dir=data_dir, image_size=224,  # patch 16
                                  predictor_epochs=40, classifier_epochs=20, unet_epochs=35)
    if smoke:
        return GazeIntensityStudy(name="gaze_intensity_smoke", seed=seed, image_size=32,
                                  n_train=16, n_val=8, n_test=8,
                                  predictor={"dim": 24, "depth": 2, "heads": 2, "patch": 4},
                                  predictor_epochs=1, classifier_epochs=1, unet_epochs=1,
                                  batch_size=8, classifier_backbone="small_cnn", weights=None,
                                  smoke=True)
    # 64 px: patch 8 (an 8 x 8 token grid) instead of the 4 (16 x 16): measured 19 vs
    # 5.6 samples/s per training step on the 2 CPU cores, the difference between a ~40-minute
    # default run and a ~2-hour one. patch=None gives side / 16 (the paper's 14 x 14 at 224 px).
    return GazeIntensityStudy(seed=seed, predictor={"patch": 8})
