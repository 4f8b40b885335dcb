"""This daemon's part in a fleet: claims runs while it has free slots, beats its heart.

Claiming is a poll of the queue every ``poll_seconds`` and, between polls, whenever
PostgreSQL notifies that a run became claimable (``LISTEN syncd_runs``): a run
triggered on any daemon starts on an idle one within a few milliseconds, and the poll
still finds runs whose lease expired (their holder died) without any notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from syncd import __version__
from syncd.config.fleet import FleetConfig
from syncd.fleet.affinity import Affinity
from syncd.fleet.listen import Listener
from syncd.store.database import unavailable
from syncd.store.fleet import FleetStore
from syncd.store.models import utcnow
from syncd.store.orm import pw
from syncd.tasks import supervise
from syncd.terms import UNFINISHED, utc_iso

if TYPE_CHECKING:
    from syncd.engine import Engine
    from syncd.engine.engine import Request
    from syncd.engine.plan import JobPlan

SKIP_S = 5.0  # a run this daemon could not start (its file lock is held) waits this long
WAIT_POLL_S = 0.25  # how often ``wait`` looks at a run another daemon executes


class Fleet:
    """Enqueues the runs any host may execute and claims them when slots are free."""

    def __init__(self, engine: Engine, config: FleetConfig) -> None:
        self.engine, self.config = engine, config
        self.queue = FleetStore(engine.store)
        self.host = engine.store.claims.host
        self.affinity = Affinity(self.host, config.shared_paths)
        self.log = structlog.get_logger("syncd.fleet").bind(host=self.host)
        self.started = utcnow()
        self._wake = asyncio.Event()
        self._skip: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self.database_ok = True

    # -- the queue ------------------------------------------------------------------------

    def queues(self, request: Request, identifier: str) -> bool:
        """Whether a run goes to the fleet's queue (else it runs here, as on one host)."""
        return not request.dry_run and self.affinity(request.trigger, identifier) is None

    async def enqueue(self, plan: JobPlan, identifier: str, request: Request,
                      resume: bool = True, tick: datetime | None = None) -> int | None:
        """A claimable run; None when ``tick`` was already fired by another daemon."""
        try:
            run_id = await asyncio.to_thread(
                self.queue.enqueue, job=plan.name, trigger=request.trigger,
                source_type=plan.source_cls.name, identifier=identifier, spec=request.spec,
                device=request.device, resume=resume, tick=tick)
        except pw.PeeweeException as exc:  # a server gone: one clear error, as for a run
            raise unavailable(exc) from None
        if run_id is not None:
            self.log.info("run queued for the fleet", run_id=run_id, job=plan.name,
                          trigger=request.trigger)
            self.wake()
        return run_id

    async def wait(self, run_id: int) -> str:
        """The final status of a run, whichever daemon executes it."""
        while True:
            if self.engine.is_running(run_id):
                return (await self.engine.wait(run_id)).status
            status = await asyncio.to_thread(self.queue.status_of, run_id)
            if status is None:
                raise KeyError(run_id)
            if status not in UNFINISHED:
                return status
            await asyncio.sleep(WAIT_POLL_S)

    def wake(self) -> None:
        """Look for claimable runs now (a run was queued, or a slot came free)."""
        self._wake.set()

    async def claim(self) -> list[int]:
        """Claim and start runs while slots are free; the ids started."""
        started: list[int] = []
        now = time.monotonic()
        self._skip = {i: t for i, t in self._skip.items() if t > now}
        while self.engine.free_slots() > 0 and not self.engine.closing:
            run = await asyncio.to_thread(self.queue.claim_next, list(self.engine.plans),
                                          set(self._skip))
            if run is None:
                break
            if await self.engine.adopt(run):
                started.append(run.id)
            else:
                self._skip[run.id] = time.monotonic() + SKIP_S
        return started

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> list[int]:
        """Join the fleet: heartbeat, free this host's orphaned runs, start claiming."""
        await asyncio.to_thread(self.queue.beat, __version__, self.started)
        freed = await asyncio.to_thread(self.queue.free_orphans)
        if freed:
            self.log.info("runs of this host's previous process freed", runs=freed)
        self._listener = Listener(self.engine.store.db, self.wake)
        self._listener.start()
        started = await self.claim()
        self._tasks = [supervise(self._claiming(), "fleet-claims"),
                       supervise(self._beating(), "fleet-heartbeat")]
        self.engine.listeners.append(self._on_event)
        return started

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            self._listener.stop()
        with contextlib.suppress(pw.PeeweeException):
            await asyncio.to_thread(self.queue.leave)

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "run_finished":
            self.wake()  # a slot came free

    async def _claiming(self) -> None:
        while True:
            try:
                await self.claim()
                self.database_ok = True
            except (pw.PeeweeException, OSError) as exc:  # the server is away: try again
                if self.database_ok:
                    self.log.warning("cannot claim runs: the database does not answer",
                                     error=str(exc).strip())
                self.database_ok = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            self._wake.clear()

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            try:
                await asyncio.to_thread(self.queue.beat, __version__, self.started)
            except (pw.PeeweeException, OSError) as exc:
                self.log.warning("heartbeat failed", error=str(exc).strip())

    # -- what the API shows ----------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """This daemon and its live peers (heartbeat within two leases)."""
        peers, running = await asyncio.to_thread(self._peers)
        return {"host": self.host, "holder": self.engine.store.claims.holder,
                "leaseSeconds": self.config.lease_seconds,
                "peers": [{"host": p.host, "holder": p.holder, "version": p.version,
                           "startedAt": utc_iso(p.started_at),
                           "lastSeen": utc_iso(p.last_seen),
                           "running": running.get(p.host, 0)} for p in peers]}

    def _peers(self) -> tuple[list[Any], dict[str, int]]:
        return (self.queue.peers(2 * self.config.lease_seconds),
                self.queue.running_by_host())

