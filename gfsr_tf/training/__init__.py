from .trainer import Trainer, classification_loss, resolve_jit

__all__ = ["Trainer", "classification_loss", "resolve_jit"]
