"""The generic training loop (`Trainer`), the step interface and learning-rate schedules by name.
Exports load on first use, so `training.schedules` (pure Python, what the config validates
against) imports without TensorFlow."""
from .. import lazy_exports

_EXPORTS = {"ClassificationStep": "step", "TrainStep": "step", "accuracy": "step",
            "classification_loss": "step", "Trainer": "trainer", "make_optimizer": "trainer",
            "resolve_jit": "trainer"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
