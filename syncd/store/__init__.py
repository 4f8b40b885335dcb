"""Persistence: peewee models of SPEC §6 and the ``Store`` API over them."""

from syncd.store.runs import COUNTERS, Store, checkpoint_of, fingerprint_of

__all__ = ["COUNTERS", "Store", "checkpoint_of", "fingerprint_of"]
