"""gfsr_tf: guided-focus (GFSR-Net) training of medical image classifiers in Keras 3 / TF 2."""
from .config import StudyConfig, preset
from .models import build_classifier
from .preprocessing import preprocess
from .saliency import Explanation, explain, gradcam

__version__ = "0.1.0"
__all__ = ["Explanation", "StudyConfig", "build_classifier", "explain", "gradcam", "preprocess",
           "preset"]
