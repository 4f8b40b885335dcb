"""A package's names imported on first use (PEP 562), so that importing one of its
modules does not import the rest: ``syncd.adapters`` needs ``syncd.store.names`` and
``syncd.config.secrets``, and a reader process the engine's duplicate-key index."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, homes: Mapping[str, str],
               namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The package's ``__getattr__``: ``homes`` maps a name to its module in ``package``;
    a name is imported once, then kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        namespace[name] = value
        return value

    return __getattr__
