"""syncd: keep data in sync between sources and targets.

Plugins import the hook marker from here: ``from syncd import hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("syncd")

__all__ = ["__version__", "hookimpl"]
