"""The method registry by name. `get_method("gfsr")`; a new method registers an instance of its
`Method` subclass with `register` (tests do so with methods of their own)."""
from __future__ import annotations

import importlib

from .base import Method

_BUILTIN = ("baseline", "gfsr")
_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    if not method.name:
        raise ValueError("a method needs a name")
    _REGISTRY[method.name] = method
    return method


def _load_builtins() -> None:
    for name in _BUILTIN:
        if name not in _REGISTRY:
            importlib.import_module(f"{__package__}.{name}")


def get_method(name: str) -> Method:
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def method_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


