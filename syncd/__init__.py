"""syncd: keep data in sync between sources and targets.

Plugins import the hook marker from here: ``from syncd import hookimpl``.
"""

import pluggy

from syncd.peewee_drivers import hide_drivers_from_peewee

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("syncd")

hide_drivers_from_peewee()  # a SQLite start loads no server driver (see that module)

__all__ = ["__version__", "hookimpl"]
