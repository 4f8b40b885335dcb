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
from collections.abc import Mapping

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|min|m|h|d)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/s"`` → (10, 1.0); N/s, N/min, N/h or N/d. ValueError names what is allowed."""
    match = RATE.match(text)
    if not match or int(match[1]) < 1:
        raise ValueError(f"rate limit {text!r}: write N/s, N/min, N/h or N/d with N ≥ 1")
    return int(match[1]), UNITS[match[2]]


#: a window is stretched by this share of its length (at most ``SLACK_MAX`` seconds), so
#: that requests which reach the remote a little later or sooner than they started
#: still fit the remote's own window
SLACK, SLACK_MAX = 0.02, 0.05


class RateLimit:
    """At most ``count`` request starts in any ``period`` seconds (no limit: ``None``).

    A remote may also pause everyone: a 429's ``Retry-After`` or a ``RateLimit-*``
    header saying nothing remains until the reset (``pause``).
    """

    def __init__(self, count: int | None, period: float = 1.0) -> None:
        self.count, self.period = count, period
        self.spacing = period + min(period * SLACK, SLACK_MAX)
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str | None) -> RateLimit:
        return cls(*parse_rate(text)) if text else cls(None)

    def reserve(self) -> float:
        """Take the next free slot; returns how long to wait before starting."""
        with self._lock:
            now = time.monotonic()
            at = max(now, self._paused_until)
            if self.count is None:
                return at - now
            while self._starts and self._starts[0] <= now - self.spacing:
                self._starts.popleft()
            if self._starts:
                at = max(at, self._starts[-1])
            if len(self._starts) >= self.count:
                at = max(at, self._starts[-self.count] + self.spacing)
            self._starts.append(at)
            return max(0.0, at - now)

    def pause(self, seconds: float) -> None:
        """Nobody starts a request for ``seconds`` (the remote said so)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - time.monotonic())

    async def wait(self) -> float:
        """Wait for a slot (and out any pause that began meanwhile); the seconds waited."""
        waited = 0.0
        delay = self.reserve()
        while delay > 0:
            await asyncio.sleep(delay)
            waited += delay
            delay = self.paused_for()
        return waited

    def note(self, headers: Mapping[str, str]) -> None:
        """Feed the remote's ``RateLimit-*`` / ``X-RateLimit-*`` answer headers."""
        wait = exhausted_for(headers)
        if wait:
            self.pause(wait)


_SHARED: dict[str, RateLimit] = {}
_SHARED_LOCK = threading.Lock()


def shared(remote: str, rate: str | None) -> RateLimit:
    """The one limit of ``remote`` in this process (made on first use)."""
    wanted = parse_rate(rate) if rate else (None, 1.0)
    with _SHARED_LOCK:
        limit = _SHARED.get(remote)
        if limit is None or (limit.count, limit.period) != wanted:
            limit = _SHARED[remote] = RateLimit(*wanted)
        return limit


_FIELD = re.compile(r"(?:^|[;,\s])(r|t|remaining|reset)=(\d+)")
EPOCH = 1_000_000_000  # a reset this large is a Unix time, not a number of seconds


def exhausted_for(headers: Mapping[str, str]) -> float:
    """Seconds until the remote's quota resets when nothing remains of it, else 0.

    Reads ``RateLimit-Remaining`` / ``-Reset``, ``X-RateLimit-Remaining`` / ``-Reset``
    (seconds, or a Unix time as GitHub sends) and the structured ``RateLimit`` header
    (``r=0;t=5``). Capped at an hour.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    pairs = [(lower.get(f"{p}ratelimit-remaining"), lower.get(f"{p}ratelimit-reset"))
             for p in ("", "x-")]
    if "ratelimit" in lower:
        fields = dict(_FIELD.findall(lower["ratelimit"]))
        pairs.append((fields.get("r", fields.get("remaining")),
                      fields.get("t", fields.get("reset"))))
    for remaining, reset in pairs:
        try:
            if remaining is None or reset is None or int(remaining.strip()) > 0:
                continue
            seconds = float(reset.strip())
        except ValueError:
            continue
        if seconds > EPOCH:
            seconds -= time.time()
        return min(max(seconds, 0.0), 3600.0)
    return 0.0
