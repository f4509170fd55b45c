"""The paper's chest-X-ray setting: 128 px, ImageNet ResNet50, Grad-CAM at the 3rd conv block,
alpha=0.5, beta=1, lambda=1, exact second-order Grad-CAM. The paper trains for 500-1000 epochs
on a GPU; the epoch count here is that lower bound."""
from ..config import StudyConfig
from .common import make_smoke


def get_config(smoke: bool = False) -> StudyConfig:
    c = StudyConfig(name="pneumonia_gfsr_paper")
    c.benchmark.image_size = 128
    c.model.weights = "auto"
    c.model.bn_momentum = None
    c.train.epochs = 500
    c.train.learning_rate = 1e-4
    return make_smoke(c) if smoke else c
