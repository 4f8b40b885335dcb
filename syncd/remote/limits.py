"""A rate limit shared by every run that talks to one remote, whatever thread or loop.

Each request reserves the next free slot of a sliding window under a lock and then
waits for it, so in any window of the limit's length at most ``count`` requests
start. aiolimiter's and pyrate-limiter's buckets are bound to one event loop or
need a blocking acquire; runs here each have a loop of their own in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Callable

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|min|m|h|d)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/s"`` → (10, 1.0); N/s, N/min, N/h or N/d. ValueError names what is allowed."""
    match = RATE.match(text)
    if not match or int(match[1]) < 1:
        raise ValueError(f"rate limit {text!r}: write N/s, N/min, N/h or N/d with N ≥ 1")
    return int(match[1]), UNITS[match[2]]


class RateLimit:
    """At most ``count`` request starts in any ``period`` seconds."""

    def __init__(self, count: int, period: float) -> None:
        self.count, self.period = count, period
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        return cls(*parse_rate(text))

    def reserve(self) -> float:
        """Take the next free slot; returns how long to wait before starting."""
        with self._lock:
            now = time.monotonic()
            while self._starts and self._starts[0] <= now - self.period:
                self._starts.popleft()
            if len(self._starts) < self.count:
                at = max(now, self._starts[-1] if self._starts else now)
            else:
                at = self._starts[-self.count] + self.period
            self._starts.append(at)
            return max(0.0, at - now)

    async def wait(self) -> None:
        delay = self.reserve()
        if delay:
            await asyncio.sleep(delay)


#: makes the limit of a remote; in a fleet, ``syncd.fleet.ratelimit`` puts one here
#: that keeps the window in the database, so the limit holds across daemons
factory: Callable[[str, int, float], RateLimit] | None = None

_SHARED: dict[str, RateLimit] = {}
_SHARED_LOCK = threading.Lock()


def shared(remote: str, rate: str) -> RateLimit:
    """The one limit of ``remote`` in this process (made on first use)."""
    with _SHARED_LOCK:
        limit = _SHARED.get(remote)
        if limit is None or (limit.count, limit.period) != parse_rate(rate):
            limit = _SHARED[remote] = (factory(remote, *parse_rate(rate)) if factory
                                       else RateLimit.parse(rate))
        return limit
