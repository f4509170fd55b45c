"""What a finished training leaves beside `best.keras`: the model card `best.json` (method,
class names, input size, channels, preprocessor, Grad-CAM layer, the study config), so that
`explain`, `evaluate`, `export` and the evaluators need nothing repeated."""
from __future__ import annotations

import json
from pathlib import Path

from .preprocessing import PREPROCESSORS

CARD_FORMAT = "gfsr_tf model card v1"


def model_card_path(model_path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_model_card(model_path, *, method: str, options: dict, class_names, image_size: int,
                     channels: int, preprocessor: str, target_layer: str | None,
                     config: dict, extra: dict | None = None) -> Path:
    card = {"format": CARD_FORMAT, "method": method, "options": options,
            "class_names": list(class_names), "image_size": int(image_size),
            "channels": int(channels), "preprocessor": preprocessor,
            "preprocessing": PREPROCESSORS[preprocessor][1],
            "target_layer": target_layer, **(extra or {}), "config": config}
    path = model_card_path(model_path)
    path.write_text(json.dumps(card, indent=2))
    return path


def read_model_card(model_path) -> dict:
    """The model's card, or {} for a model trained elsewhere. Cards written before methods and
    named preprocessors existed describe GFSR/baseline ResNet50 classifiers: they read as
    method "gfsr" with the "resnet50_caffe" preprocessor."""
    path = model_card_path(model_path)
    if not path.exists():
        return {}
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"model card {path} is not valid JSON: {exc}") from None
    card.setdefault("method", "gfsr")
    card.setdefault("preprocessor", "resnet50_caffe")
    return card


def load_model(path):
    """A .keras model with a one-line error for a missing or unreadable file."""
    import keras
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    # Keras answers "File not found" for a file that exists but is empty or corrupt: say what
    # is wrong with it instead
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"cannot load {path}: the file is empty (0 bytes)")
    if path.suffix == ".keras" and path.is_file():
        import zipfile
        if not zipfile.is_zipfile(path):
            raise ValueError(f"cannot load {path}: not a .keras archive (a .keras file is a zip "
                             "archive; this one is corrupt, truncated or another format)")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # Keras raises many types for a file that is not a model
        raise ValueError(f"cannot load {path} as a Keras model: {str(exc)[:200]}") from None
