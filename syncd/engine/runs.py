"""What a run reports while it goes (``Progress``), how it ends (``Outcome``), and how it
is asked to stop (``Stop``): shared by the executor, the engine and progress listeners."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from syncd.adapters import ItemError


@dataclass(slots=True)
class Progress:
    """What a run has done so far, as handed to progress listeners."""

    run_id: int
    job: str
    processed: int = 0
    position: int = 0
    size: int | None = None
    batch_errors: list[ItemError] = field(default_factory=list)
    duration: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0


@dataclass(slots=True)
class Outcome:
    status: str  # completed | failed | cancelled | pending (stopped for shutdown)
    error: str | None = None


class Stop(threading.Event):
    """Asks a run to stop after its current batch; ``reason`` says why."""

    reason: str = ""

    def request(self, reason: str) -> None:
        self.reason = reason
        self.set()
