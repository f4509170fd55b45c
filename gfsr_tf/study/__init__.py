"""One study from one config (`run_study`), and the shortcut ablation built on it."""
from .data import data_summary, load_data
from .evaluate import evaluate_saved_model
from .run import run_study, train_variant, validate

__all__ = ["data_summary", "evaluate_saved_model", "load_data", "run_study", "train_variant", "validate"]
