from .step import ClassificationStep, TrainStep, accuracy, classification_loss
from .trainer import Trainer, make_optimizer, resolve_jit

__all__ = ["ClassificationStep", "TrainStep", "Trainer", "accuracy", "classification_loss",
           "make_optimizer", "resolve_jit"]
