"""gfsr_tf: guided-focus (GFSR-Net) training of medical image classifiers in Keras 3 / TF 2."""
import importlib

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict):
    """A module `__getattr__` (PEP 562) that imports `name` from `package.<exports[name]>` on
    first use, so importing the package does not load TensorFlow."""
    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__


# Imported on first use, so `gfsr --help` and the CLI's logging set-up run before TensorFlow loads.
_EXPORTS = {"StudyConfig": "config", "preset": "presets", "build_classifier": "models",
            "preprocess": "preprocessing", "Explanation": "saliency", "explain": "saliency",
            "gradcam": "saliency", "explain_posthoc": "saliency", "get_method": "methods",
            "run_study": "study", "GuidedModel": "methods.gfsr.guided_model",
            "GuidanceSchedule": "methods.gfsr.guided_model"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
