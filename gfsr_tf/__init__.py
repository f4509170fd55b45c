"""gfsr_tf: guided-focus (GFSR-Net) training of medical image classifiers in Keras 3 / TF 2."""
import importlib

__version__ = "0.1.0"
# Imported on first use (PEP 562), so `gfsr --help` and the CLI's logging set-up run before
# TensorFlow loads.
_EXPORTS = {"StudyConfig": "config", "preset": "presets", "build_classifier": "models",
            "preprocess": "preprocessing", "Explanation": "saliency", "explain": "saliency",
            "gradcam": "saliency", "explain_posthoc": "saliency", "get_method": "methods",
            "run_study": "study"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'gfsr_tf' has no attribute {name!r}")
