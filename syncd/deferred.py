"""A module another one imports, loaded only when that one first uses it.

peewee imports every database driver it finds as it is imported itself. PyMySQL, and
the ``cryptography`` it brings for its authentication, take about 20 ms of the 0.28 s
a ``syncd sync`` of a small file takes, though it never talks to MariaDB. ``syncd.store.orm``
imports peewee inside ``standing_in("pymysql")``: peewee's ``import pymysql`` gets a
stand-in, which leaves ``sys.modules`` as soon as peewee is imported. peewee keeps it
as its driver, and the first attribute it asks of it (``mysql.connect``) imports the
real PyMySQL the usual way. Any other ``import pymysql`` (or of one of its modules)
never sees the stand-in, so the package is always loaded whole and once.

(The standard library's ``importlib.util.LazyLoader`` does not serve here: on Python
3.11 an ``import`` statement of a lazy module already loads it.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StandIn(types.ModuleType):
    """Answers every attribute from the real module, imported on the first one asked."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # asked while still standing in
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def standing_in(name: str) -> Iterator[None]:
    """While the block runs, ``import name`` gets a ``StandIn``; nothing changes for a
    module that is imported already or not installed (its import fails as it would)."""
    spec = None if name in sys.modules else importlib.util.find_spec(name)
    if spec is None:
        yield
        return
    stand_in = StandIn(name)
    stand_in.__spec__ = spec  # what the import statement reads: found, not initializing
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
