"""Modules imported on first use instead of when another module imports them.

peewee imports every database driver it finds as it is imported itself. PyMySQL, and
the ``cryptography`` it brings for its authentication, take about 20 ms: a tenth of
a ``syncd sync`` of a small file, which never talks to MariaDB. ``defer("pymysql")``
puts a stand-in under that name: ``import pymysql`` gets it at no cost, and the first
attribute asked of it (``pymysql.connect``) imports the real module, which takes the
stand-in's place in ``sys.modules``. Code holding the stand-in keeps working through it.

(The standard library's ``importlib.util.LazyLoader`` does not serve here: on Python
3.11 an ``import`` statement of a lazy module already loads it.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


class _StandIn(types.ModuleType):
    """Imports the real module on the first attribute not set here, then answers from it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(self.__name__), name)


def defer(name: str) -> None:
    """Put a stand-in for the top-level module ``name``, unless it is imported or absent."""
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None:  # not installed: ``import`` fails as it would have
            return
        stand_in = _StandIn(name)
        stand_in.__spec__ = spec  # the import statement reads it: found, not initializing
        sys.modules[name] = stand_in


def load(name: str) -> types.ModuleType:
    """The real module ``name``, imported now if only its stand-in is (once, under a lock:
    on Python 3.11 two threads must not run a module's code twice)."""
    with _lock:
        module = sys.modules.get(name)
        if module is None or isinstance(module, _StandIn):
            sys.modules.pop(name, None)  # a failed import leaves it out: the next one retries
            module = importlib.import_module(name)
        return module
