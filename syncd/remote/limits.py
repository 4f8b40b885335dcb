"""A rate limit shared by every run that talks to one remote, whatever thread or loop.

A request starts only when, under a lock, the sliding window of recent requests has
room; otherwise it sleeps until the oldest leaves the window and asks again. A
remote counts a request when it arrives, which is some time after it started (a
new connection, a TLS handshake, a busy loop) but never after its answer came back:
so each request is kept in the window from its start and, once answered, from the
moment of its answer. Then no ``count + 1`` requests ever reach the remote within
one ``period``, however late some of them arrive. Per-second limits are also paced
evenly (one start every period/count) rather than sent in bursts.

aiolimiter's and pyrate-limiter's buckets are bound to one event loop or need a
blocking acquire; runs here each have a loop of their own in a worker thread.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import threading
import time
from collections.abc import Callable, Mapping

UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|min|m|h|d)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/s"`` → (10, 1.0); N/s, N/min, N/h or N/d. ValueError names what is allowed."""
    match = RATE.match(text)
    if not match or int(match[1]) < 1:
        raise ValueError(f"rate limit {text!r}: write N/s, N/min, N/h or N/d with N ≥ 1")
    return int(match[1]), UNITS[match[2]]


#: a window is stretched by this share of its length (at most ``SLACK_MAX`` seconds)
#: for remotes that count in coarse clock ticks
SLACK, SLACK_MAX = 0.01, 0.05
#: a per-second pace catches up on a stall this share of its period long at most
CATCH_UP = 0.25


class RateLimit:
    """At most ``count`` requests reach the remote in any ``period`` seconds (``None``:
    no limit). A remote may also pause everyone: a 429's ``Retry-After`` or a
    ``RateLimit-*`` header saying nothing remains until the reset (``pause``).
    """

    def __init__(self, count: int | None, period: float = 1.0) -> None:
        self.count, self.period = count, period
        self.spacing = period + min(period * SLACK, SLACK_MAX)
        #: even pacing for per-second limits (over the stretched window, so that the
        #: window itself rarely has to hold a request back); longer ones allow a burst
        self.interval = self.spacing / count if count and period <= 1.0 else 0.0
        self._window: list[float] = []  # sorted: start, or answer once answered
        self._next = 0.0  # earliest next start by pacing
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, text: str | None) -> RateLimit:
        return cls(*parse_rate(text)) if text else cls(None)

    def try_start(self) -> float | None:
        """Start now if allowed: returns the start's mark (for ``answered``), or ``None``
        for no limit; a negative number is the seconds to wait before asking again."""
        with self._lock:
            now = time.monotonic()
            wait = self._paused_until - now
            if self.count is not None:
                gone = bisect.bisect_right(self._window, now - self.spacing)
                del self._window[:gone]
                if len(self._window) >= self.count:
                    wait = max(wait, self._window[-self.count] + self.spacing - now)
                wait = max(wait, self._next - now)
            if wait > 0:
                return -wait
            if self.count is None:
                return None
            bisect.insort(self._window, now)
            # on a grid while requests queue: a wake-up a little late keeps the pace, and
            # a short stall of the run (a batch committing) is caught up, as fast as the
            # window allows; after a longer one the pace starts afresh
            behind = now - self._next
            self._next = (self._next if behind < CATCH_UP * self.period else now) \
                + self.interval
            return now

    def answered(self, mark: float | None) -> None:
        """The request started at ``mark`` is answered (or failed): it reached the remote
        by now at the latest, so it stays in the window from now."""
        if mark is None:
            return
        with self._lock:
            index = bisect.bisect_left(self._window, mark)
            if index < len(self._window) and self._window[index] == mark:
                del self._window[index]
                bisect.insort(self._window, time.monotonic())

    async def acquire(self) -> tuple[float | None, float]:
        """Wait until a request may start: its mark (for ``answered``) and the seconds
        waited."""
        started = None
        while (mark := self.try_start()) is not None and mark < 0:
            started = started or time.monotonic()
            await asyncio.sleep(-mark)
        return mark, (time.monotonic() - started if started else 0.0)

    def pause(self, seconds: float) -> None:
        """Nobody starts a request for ``seconds`` (the remote said so)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def note(self, headers: Mapping[str, str]) -> None:
        """Feed the remote's ``RateLimit-*`` / ``X-RateLimit-*`` answer headers."""
        wait = exhausted_for(headers)
        if wait:
            self.pause(wait)


#: makes the limit of a remote; in a fleet, ``syncd.fleet.ratelimit`` puts one here
#: that keeps the window in the database, so the limit holds across daemons
factory: Callable[[str, int, float], RateLimit] | None = None

_SHARED: dict[str, RateLimit] = {}
_SHARED_LOCK = threading.Lock()


def shared(remote: str, rate: str | None) -> RateLimit:
    """The one limit of ``remote`` in this process (made on first use)."""
    wanted = parse_rate(rate) if rate else (None, 1.0)
    with _SHARED_LOCK:
        limit = _SHARED.get(remote)
        if limit is None or (limit.count, limit.period) != wanted:
            limit = _SHARED[remote] = (factory(remote, *parse_rate(rate)) if factory and rate
                                       else RateLimit(*wanted))
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
