"""The control API (SPEC §5): aiohttp on the daemon's event loop."""

from syncd.api.app import make_app
from syncd.api.context import ApiContext
from syncd.api.server import serve

__all__ = ["ApiContext", "make_app", "serve"]
