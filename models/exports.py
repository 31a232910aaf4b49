"""Lazy public names for the engines' packages.

Each wing's ``__init__.py`` names its public API in ``__all__`` (as POT's ``ot/lp/__init__.py``
does over its private modules) but imports a module only when one of its names is first used, so
``import models.similarity.transport`` stays free of torch, and the linking wing costs nothing
to a caller that only computes similarity.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``package.<exports[name]>`` on first use of ``name``."""

    def __getattr__(name: str) -> Any:  # noqa: N807 (the name Python looks for, PEP 562)
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
