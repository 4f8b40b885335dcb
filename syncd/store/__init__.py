"""Persistence: peewee models of SPEC §6 and the ``Store`` API over them.

The names below are imported on first use: ``syncd.store.hashing``, which the adapter
contract uses, is then imported without peewee and its drivers (20 MB, 70 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import lazy_names

if TYPE_CHECKING:
    from syncd.store.runs import COUNTERS, Store, checkpoint_of, fingerprint_of

_HOMES = {"COUNTERS": "runs", "Store": "runs", "checkpoint_of": "runs", "fingerprint_of": "runs"}

__all__ = ["COUNTERS", "Store", "checkpoint_of", "fingerprint_of"]

__getattr__ = lazy_names(__name__, _HOMES, globals())
