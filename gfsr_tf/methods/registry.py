"""The method registry by name. `get_method("gfsr")`; a new method registers an instance of its
`Method` subclass with `register` (tests do so with methods of their own)."""
from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from .base import Method

_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if not method.name:
        raise ValueError("a method needs a name")
    _REGISTRY[method.name] = method
    return method


@functools.cache
def load_builtins() -> None:
    """Import every method folder (`methods/<name>/`) once; each registers itself, so a new
    method needs no line anywhere else."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.ispkg:
            importlib.import_module(f"{__package__}.{module.name}")


def get_method(name: str) -> Method:
    load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def method_names() -> list[str]:
    load_builtins()
    return sorted(_REGISTRY)


