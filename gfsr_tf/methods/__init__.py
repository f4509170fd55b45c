"""Methods: a method = config dataclass + model builder + training step + explainer + describe
(`base.Method`). `get_method("gfsr")`; a new method registers an instance of its subclass with
`register` (tests do so with methods of their own)."""
from .base import Method
from .registry import get_method, method_names, register

__all__ = ["Method", "get_method", "method_names", "register"]
