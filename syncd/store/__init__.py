"""Persistence: peewee models of SPEC §6 and the ``Store`` API over them.

The names below are imported on first use: ``syncd.store.hashing``, which the adapter
contract uses, is then imported without peewee and its drivers (20 MB, 70 ms).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.store.runs import COUNTERS, Store, checkpoint_of, fingerprint_of

_HOMES = {"COUNTERS": "runs", "Store": "runs", "checkpoint_of": "runs", "fingerprint_of": "runs"}

__all__ = ["COUNTERS", "Store", "checkpoint_of", "fingerprint_of"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"syncd.store.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
