"""A remote that enforces a rate limit, as real APIs do: a real aiohttp server.

``GET /work`` is allowed ``limit`` times in any ``period`` seconds (a sliding window
over arrival times); beyond that it answers 429 with ``Retry-After``. With
``quota_headers`` it instead counts a fixed window and tells the client what remains
(``RateLimit-Remaining`` / ``-Reset``, or the ``X-`` forms) on every answer. Faults
(a status with a ``Retry-After`` value) can be queued for the next requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from aiohttp import web

from tests.fakes.threaded import ThreadedServer


class RateLimitedServer(ThreadedServer):
    def __init__(self, limit: int = 10, period: float = 1.0,
                 quota_headers: str | None = None) -> None:
        self.limit, self.period, self.quota_headers = limit, period, quota_headers
        self.accepted: list[float] = []  # arrival times (monotonic) of answered requests
        self.arrivals: list[float] = []  # of every request
        self.rejected = 0  # 429s for going over the limit
        self._window: deque[float] = deque()
        self._faults: deque[tuple[int, str | None]] = deque()
        self._fixed_start = 0.0
        self._fixed_count = 0
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/work", self._work)
        return app

    def fail_next(self, status: int, retry_after: str | None = None, count: int = 1) -> None:
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    async def _work(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        with self._lock:
            self.arrivals.append(now)
            if self._faults:
                status, after = self._faults.popleft()
                return web.Response(status=status, text="injected",
                                    headers={"Retry-After": after} if after else {})
            if self.quota_headers is not None:
                return self._fixed(now)
            while self._window and self._window[0] <= now - self.period:
                self._window.popleft()
            if len(self._window) >= self.limit:
                self.rejected += 1
                wait = self._window[0] + self.period - now
                return web.Response(status=429, text="slow down",
                                    headers={"Retry-After": str(math.ceil(wait))})
            self._window.append(now)
            self.accepted.append(now)
        return web.json_response({"ok": True})

    def _fixed(self, now: float) -> web.Response:
        """A fixed window that announces what remains of it (called under the lock)."""
        if now >= self._fixed_start + self.period:
            self._fixed_start, self._fixed_count = now, 0
        reset = str(math.ceil(self._fixed_start + self.period - now))
        prefix = self.quota_headers
        if self._fixed_count >= self.limit:
            self.rejected += 1
            return web.Response(status=429, text="slow down", headers={"Retry-After": reset})
        self._fixed_count += 1
        self.accepted.append(now)
        headers = {f"{prefix}RateLimit-Limit": str(self.limit),
                   f"{prefix}RateLimit-Remaining": str(self.limit - self._fixed_count),
                   f"{prefix}RateLimit-Reset": reset}
        return web.json_response({"ok": True}, headers=headers)
