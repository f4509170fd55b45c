"""Named studies, one file each (big_vision's `configs/*.py`): `get_config(smoke=False)` returns
a fresh `StudyConfig`. `preset(name)` finds the file by name; adding a study = adding a file."""
from __future__ import annotations

import importlib
import pkgutil

from ..config import StudyConfig
from .common import make_smoke

# modules of this package that are helpers or row tables, not studies
_NOT_PRESETS = {"common"}
PRESETS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                       if m.name not in _NOT_PRESETS))


def preset(name: str, smoke: bool = False) -> StudyConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    config = importlib.import_module(f"{__name__}.{name}").get_config(smoke)
    return make_smoke(config) if smoke and not config.smoke else config


__all__ = ["PRESETS", "preset"]
