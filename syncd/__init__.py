"""syncd: keep data in sync between sources and targets.

Plugins import the hook marker from here: ``from syncd import hookimpl``.
"""

import pluggy

from syncd.deferred import defer

defer("pymysql")  # peewee imports it, with cryptography, on every start (syncd.deferred)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("syncd")

__all__ = ["__version__", "hookimpl"]
