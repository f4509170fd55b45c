from .trainer import Trainer, classification_loss, probabilities_from_logits, resolve_jit

__all__ = ["Trainer", "classification_loss", "probabilities_from_logits", "resolve_jit"]
