"""What the API needs from the daemon, handed to the app factory as one object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from syncd.bootstrap import Setup
from syncd.engine import Engine
from syncd.store import Store


@dataclass(slots=True)
class ApiContext:
    """The live parts of the daemon the API reads and drives."""

    setup: Callable[[], Setup]  # the current config (SIGHUP may swap it)
    store: Store
    engine: Engine
    token: str | None = None
    started: float = field(default_factory=time.monotonic)
    closing: bool = False

    @property
    def roots(self) -> list[Path]:
        """Where API-triggered runs may read files: watched folders, state_dir, allowed_paths."""
        setup = self.setup()
        roots = [setup.state_dir, *(Path(p) for p in setup.config.api.allowed_paths)]
        roots += [job.watch.path for job in setup.config.jobs.values() if job.watch]
        return [r.resolve() for r in roots]


CONTEXT = web.AppKey("context", ApiContext)
