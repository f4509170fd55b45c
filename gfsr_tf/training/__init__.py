"""The generic training loop (`Trainer`), the step interface and learning-rate schedules by name.
Exports load on first use (PEP 562), so `training.schedules` (pure Python, what the config
validates against) imports without TensorFlow."""
import importlib

_EXPORTS = {"ClassificationStep": "step", "TrainStep": "step", "accuracy": "step",
            "classification_loss": "step", "Trainer": "trainer", "make_optimizer": "trainer",
            "resolve_jit": "trainer"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
