"""``WATCHDOG=1`` only while the daemon works: systemd restarts a wedged one.

A ping proves three things, each checked before it is sent:

- the event loop runs (this coroutine is on it; a blocked loop sends nothing);
- the database answers ``SELECT 1`` within the ping interval, asked from a thread of
  the watchdog's own, so that busy run workers cannot hide a dead server, nor a dead
  server hang the watchdog;
- every run executing here made progress (got its slot, committed a batch) within
  ``[daemon] stall_seconds`` (longer than a run's retries may wait): a worker stuck in
  a read that never returns, or a deadlock, stops the pings.

When a check fails, the reason is logged once and the pings stop; when it passes
again (the server came back), they resume, so a short outage does not cost a restart
as long as it is shorter than ``WatchdogSec``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from syncd import systemd
from syncd.engine import Engine
from syncd.store import Store


class Watchdog:
    def __init__(self, store: Store, engine: Engine, stall_s: float,
                 notify: Callable[[str], object] = systemd.notify) -> None:
        self.store, self.engine, self.stall_s, self.notify = store, engine, stall_s, notify
        self.log = structlog.get_logger("syncd.watchdog")
        self._pinger = ThreadPoolExecutor(1, thread_name_prefix="syncd-watchdog")
        self.failing: str | None = None  # why the last check failed, if it did

    async def problem(self, timeout: float) -> str | None:
        """Why the daemon must not say it is alive now, or None when all is well."""
        loop = asyncio.get_running_loop()
        try:
            answered = await asyncio.wait_for(
                loop.run_in_executor(self._pinger, self.store.ping), timeout)
        except TimeoutError:
            return f"the database did not answer within {timeout:.1f}s"
        if not answered:
            return "the database does not answer"
        stalled = self.engine.stalled(self.stall_s)
        if stalled:
            run_id, idle = stalled[0]
            return f"run {run_id} made no progress for {idle:.0f}s (stall_seconds)"
        return None

    async def check(self, timeout: float) -> bool:
        """One round: ping systemd if all is well; True when it did."""
        problem = await self.problem(timeout)
        if problem is None:
            if self.failing is not None:
                self.log.info("healthy again; watchdog pings resume")
            self.failing = None
            self.notify("WATCHDOG=1")
            return True
        if problem != self.failing:
            self.log.error("unhealthy: no watchdog ping (systemd restarts syncd when "
                           "this lasts WatchdogSec)", reason=problem)
        self.failing = problem
        return False

    async def run(self, interval: float) -> None:
        try:
            while True:
                began = time.monotonic()
                await self.check(interval)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))
        finally:
            self._pinger.shutdown(wait=False)
