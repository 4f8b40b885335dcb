"""The engine: turns requests into runs, limits concurrency, resumes what was cut off.

It lives on the asyncio loop, and every piece of database or parsing work runs in a
worker thread, so the loop (and the API on it) stays responsive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from syncd.adapters import AsyncSource, ItemError, Source
from syncd.engine.announce import Announcer, Listener
from syncd.engine.cancelling import NotCancellable, cancel_run
from syncd.engine.creating import create_and_start
from syncd.engine.executor import RunExecutor
from syncd.engine.leases import renew_leases
from syncd.engine.locks import RunLock, take_lock
from syncd.engine.plan import JobPlan, plan_named, plan_of_run
from syncd.engine.preview import DryRunPlan
from syncd.engine.runs import Outcome, Stop
from syncd.engine.worker import WorkerSettings, execute_run
from syncd.errors import JobError, SourceError, SyncdError
from syncd.filenames import is_text, shown
from syncd.remote.http import HttpFactory
from syncd.store import Store
from syncd.store.database import unavailable
from syncd.store.orm import pw
from syncd.tasks import supervise

if TYPE_CHECKING:
    from syncd.fleet import Fleet

__all__ = ["Engine", "Listener", "NotCancellable", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    """What to run. ``plan`` carries an ad-hoc job that no config holds."""

    job: str
    trigger: str
    identifier: str | None = None
    dry_run: bool = False
    plan: JobPlan | None = None
    spec: Mapping[str, Any] | None = None  # how to rebuild ``plan`` when resuming
    device: Mapping[str, Any] | None = None  # the USB drive a file came from
    allow_mass_missing: bool = False  # confirm a full sync that removes more than max_missing
    #: a dry ``syncd sync --all``: one plan shared by its runs (creates assumed downstream)
    dry_plan: DryRunPlan | None = None


class Engine:
    """Starts, tracks, cancels and resumes runs: the one writer of a run's life.

    Every run, whatever started it (executed, recorded as skipped, failed before it
    could start, cancelled while nobody ran it), reaches the listeners (events,
    metrics) and the ``syncd_run_started`` / ``syncd_run_finished`` hooks. Only the
    runs executing here are held in memory.
    """

    def __init__(self, store: Store, plans: Mapping[str, JobPlan], state_dir: Path,
                 max_concurrent_runs: int = 4, pm: pluggy.PluginManager | None = None,
                 http: HttpFactory | None = None, worker: WorkerSettings | None = None
                 ) -> None:
        self.store, self.plans, self.state_dir = store, dict(plans), state_dir
        #: runs that qualify execute in a process of their own (``isolate_runs``)
        self.worker = worker
        #: HTTP clients for adapters (``ctx.client``), configured by ``[remotes]``
        self.http = http or HttpFactory(state_dir=state_dir)
        self.log = structlog.get_logger("syncd.engine")
        self._slots = asyncio.Semaphore(max_concurrent_runs)
        self.max_concurrent_runs = max_concurrent_runs
        #: in a fleet (SPEC §11): runs any host may execute go through its queue
        self.fleet: Fleet | None = None
        #: ``affinity(trigger, identifier)``: the host a run must stay on, if any
        self.affinity: Callable[[str, str | None], str | None] | None = None
        self._stops: dict[int, Stop] = {}
        self._tasks: dict[int, asyncio.Task[Outcome]] = {}
        self._keys: dict[int, tuple[str, str]] = {}  # run id -> (job, source identifier)
        self._renewer: asyncio.Task[None] | None = None
        self._progressed: dict[int, float] = {}  # run id -> monotonic time of its last step
        self.announce = Announcer(store, pm)
        self.closing = False
        self.shutdown_task: asyncio.Future[None] | None = None
        self.waiting = 0  # runs queued for a slot
        #: rebuilds the plan of an ad-hoc run from its stored spec (set by the API)
        self.adhoc_planner: Callable[[Mapping[str, Any]], JobPlan] | None = None

    # -- starting runs ------------------------------------------------------------

    async def start(self, request: Request, resume: bool = True) -> int:
        """Create (or continue) a run and start it; returns its id at once.

        With ``resume``, an interrupted run of the same job and source is continued
        from its checkpoint instead of starting a new one.
        """
        plan = request.plan or self._plan(request.job)
        source = plan.make_source(request.identifier)
        if not is_text(source.identifier):  # syncd.filenames says why
            raise SourceError(f"'{shown(source.identifier)}' is not UTF-8 text; nothing was "
                              "read (rename it)")
        if self.fleet is not None and self.fleet.queues(request, source.identifier):
            queued = await self.fleet.enqueue(plan, source.identifier, request, resume)
            assert queued is not None  # only a schedule's tick can be taken already
            return queued
        lock = await self._lock(plan.name, source.identifier)

        def start(run_id: int) -> None:
            self._launch(run_id, plan, source, lock, request.dry_run,
                         allow_mass_missing=request.allow_mass_missing,
                         dry_plan=request.dry_plan if request.dry_run else None)

        try:
            return await create_and_start(self, plan, source, request, resume, start,
                                          lock.release)
        except pw.PeeweeException as exc:  # a full disk, a server gone: one clear error
            raise unavailable(exc) from None

    async def run(self, request: Request, resume: bool = True) -> tuple[int, Outcome]:
        """Start a run and wait for its outcome."""
        run_id = await self.start(request, resume)
        return run_id, await self.wait(run_id)

    async def wait(self, run_id: int) -> Outcome:
        """The outcome of a run started here; read from the store once it left memory."""
        task = self._tasks.get(run_id)
        if task is not None:
            return await asyncio.shield(task)
        if self.fleet is not None:
            await self.fleet.wait(run_id)
        run = await asyncio.to_thread(self.store.get_run, run_id)
        if run is None:
            raise KeyError(run_id)
        return Outcome(run.status, run.error_message)

    async def record_skipped(self, job: str, trigger: str, identifier: str, reason: str,
                             device: Mapping[str, Any] | None = None) -> int:
        """A run that had nothing to do (e.g. a file already ingested), announced."""
        plan = self._plan(job)
        run_id = await asyncio.to_thread(
            self.store.record_skipped, job=job, trigger=trigger,
            source_type=plan.source_cls.name, source_identifier=identifier, reason=reason,
            device=device)
        await self.announce.started(run_id, job)
        await self.announce.finished(run_id, job, "completed", reason)
        return run_id

    async def record_failed(self, job: str, trigger: str, identifier: str, message: str,
                            errors: list[ItemError],
                            device: Mapping[str, Any] | None = None) -> int:
        """A run that failed before it could read anything (e.g. a drive that cannot be
        mounted), with its errors, announced like an executed one."""
        plan = self._plan(job)
        run_id = await asyncio.to_thread(
            self.store.record_failed, job=job, trigger=trigger,
            source_type=plan.source_cls.name, source_identifier=identifier, message=message,
            errors=errors, device=device)
        await self.announce.started(run_id, job)
        await self.announce.finished(run_id, job, "failed", message)
        return run_id

    def _launch(self, run_id: int, plan: JobPlan, source: Source | AsyncSource, lock: RunLock,
                dry_run: bool, allow_mass_missing: bool = False,
                dry_plan: DryRunPlan | None = None) -> None:
        stop = Stop()
        if self.closing:
            stop.request("shutdown")
        self._stops[run_id] = stop
        self._keys[run_id] = (plan.name, source.identifier)
        report = self.announce.progress_reporter()

        def on_progress(progress: Any) -> None:  # in the worker thread
            self._progressed[run_id] = time.monotonic()
            report(progress)

        executor = RunExecutor(self.store, plan, run_id, source, stop,
                               on_progress=on_progress, dry_run=dry_run,
                               state_dir=self.state_dir, allow_mass_missing=allow_mass_missing,
                               http=self.http, dry_plan=dry_plan)
        task = asyncio.create_task(self._execute(executor, lock), name=f"run-{run_id}")
        self._tasks[run_id] = task
        if self._renewer is None or self._renewer.done():
            self._renewer = supervise(renew_leases(self.store, self._tasks, self._stops,
                                                   self.log), "lease-renewal")

    async def _execute(self, executor: RunExecutor, lock: RunLock) -> Outcome:
        run_id = executor.run_id
        self.waiting += 1
        queued = True
        try:
            async with self._slots:
                self.waiting -= 1
                queued = False
                self._progressed[run_id] = time.monotonic()
                await self.announce.started(run_id, executor.plan.name)
                began = time.monotonic()
                outcome = await asyncio.to_thread(execute_run, executor, self.worker)
                executor.progress.duration = time.monotonic() - began
        except BaseException:
            self._forget(run_id)
            raise
        finally:
            if queued:
                self.waiting -= 1
            lock.release()
            self._stops.pop(run_id, None)
        try:
            await self.announce.finished(run_id, executor.plan.name, outcome.status,
                                         outcome.error, executor.progress.duration)
        finally:
            self._forget(run_id)
        return outcome

    def _forget(self, run_id: int) -> None:
        """A finished run leaves memory; ``wait`` then reads its outcome from the store."""
        self._tasks.pop(run_id, None)
        self._progressed.pop(run_id, None)
        self._keys.pop(run_id, None)
        self._stops.pop(run_id, None)

    # -- control ------------------------------------------------------------------

    def cancel(self, run_id: int) -> bool:
        """Ask a running run to stop after its batch; False if it is not running here."""
        stop = self._stops.get(run_id)
        if stop is None:
            return False
        stop.request("cancel")
        return True

    async def cancel_run(self, run_id: int) -> str:
        """Cancel a run, whoever holds it: ``cancelling`` when it runs here (it stops
        after its batch), ``cancelled`` when it waited to be resumed and nothing ran it.

        :class:`NotCancellable` when it is already over or another process runs it.
        """
        return await cancel_run(self, run_id)

    async def _conclude(self, run_id: int, job: str, status: str, message: str) -> None:
        """End a run that nothing executes (it never started here), announced."""
        await asyncio.to_thread(self.store.finish, run_id, status, message)
        await self.announce.finished(run_id, job, status, message)

    async def _lock(self, job: str, identifier: str) -> RunLock:
        """The run lock of ``job`` on ``identifier``, or ``RunConflict``."""
        holder = self.running(job, identifier)
        return await take_lock(self.state_dir, job, identifier, self.store,
                               self._tasks.get(holder) if holder is not None else None,
                               holder)

    def running(self, job: str, identifier: str) -> int | None:
        """The id of the run of ``job`` on ``identifier`` executing here, if any."""
        for run_id, task in self._tasks.items():
            if not task.done() and self._keys.get(run_id) == (job, identifier):
                return run_id
        return None

    def is_running(self, run_id: int) -> bool:
        task = self._tasks.get(run_id)
        return task is not None and not task.done()

    async def retry(self, run_id: int, allow_mass_missing: bool = False) -> int:
        """Start a new attempt of a failed run from its checkpoint; returns the new run id.

        ``allow_mass_missing`` confirms the removals a run stopped before (max_missing).
        """
        old = await asyncio.to_thread(self.store.run, run_id)
        plan = self._plan_of(old)
        source = plan.make_source(old.source_identifier or None)
        lock = await self._lock(plan.name, source.identifier)
        try:
            new_id = await asyncio.to_thread(self.store.retry_run, run_id)
        except pw.PeeweeException as exc:
            lock.release()
            raise unavailable(exc) from None
        except BaseException:
            lock.release()
            raise
        self._launch(new_id, plan, source, lock, dry_run=False,
                     allow_mass_missing=allow_mass_missing)
        return new_id

    async def resume_all(self, trigger: str = "resume") -> list[int]:
        """Start every pending or interrupted run that no other process is running.

        In a fleet, only as many as there are free slots: the others wait in the queue.
        """
        if self.fleet is not None:
            return await self.fleet.claim()
        started = []
        for run in await asyncio.to_thread(self.store.unfinished_runs):
            if run.id in self._tasks and not self._tasks[run.id].done():
                continue
            holder = await asyncio.to_thread(self.store.claims.claim, run.id)
            if holder is not None:
                self.log.info("run left to its holder", run_id=run.id, claimed_by=holder)
                continue
            if await self.adopt(run, trigger):
                started.append(run.id)
        return started

    async def adopt(self, run: Any, trigger: str = "resume") -> bool:
        """Start a stored run this process has just claimed; False if it cannot now."""
        try:
            plan = self._plan_of(run)
        except JobError as exc:
            await self._conclude(run.id, run.job, "failed", str(exc))
            return False
        if run.dry_run:
            await self._conclude(run.id, run.job, "cancelled", "interrupted dry run")
            return False
        try:
            source = plan.make_source(run.source_identifier or None)
        except SyncdError as exc:  # e.g. a path this host's config does not allow
            await self._conclude(run.id, run.job, "failed", str(exc))
            return False
        lock = RunLock(self.state_dir, plan.name, source.identifier)
        if not lock.acquire():
            await asyncio.to_thread(self.store.claims.release, run.id)
            return False  # another process of this host is running it right now
        self.log.info("resuming run" if run.started_at else "starting queued run",
                      run_id=run.id, job=run.job, trigger=trigger,
                      claimed_by=self.store.claims.holder)
        self._launch(run.id, plan, source, lock, dry_run=False)
        return True

    def stalled(self, limit_s: float) -> list[tuple[int, float]]:
        """Runs executing here with no progress for ``limit_s`` seconds, and how long."""
        now = time.monotonic()
        return [(run_id, now - at) for run_id, at in list(self._progressed.items())
                if now - at > limit_s and self.is_running(run_id)]

    def free_slots(self) -> int:
        """Runs this engine could start now without queueing for a slot."""
        active = sum(1 for task in self._tasks.values() if not task.done())
        return self.max_concurrent_runs - active

    async def shutdown(self) -> None:
        """Stop every run after its current batch, leaving it resumable."""
        self.closing = True
        for stop in list(self._stops.values()):
            stop.request("shutdown")
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()

    def update_plans(self, plans: Mapping[str, JobPlan]) -> None:
        """Swap in the jobs of a reloaded config; running runs keep their plan."""
        self.plans = dict(plans)

    # -- events -------------------------------------------------------------------

    @property
    def pm(self) -> pluggy.PluginManager | None:
        """The plugins whose run hooks are called."""
        return self.announce.pm

    @pm.setter
    def pm(self, pm: pluggy.PluginManager | None) -> None:
        self.announce.pm = pm

    @property
    def listeners(self) -> list[Listener]:
        """Called on the loop with ``(kind, data)`` for every run event."""
        return self.announce.listeners

    def _plan_of(self, run: Any) -> JobPlan:
        """The plan a stored run was made with: its config job, or its ad-hoc spec."""
        return plan_of_run(self.plans, self.adhoc_planner, run)

    def _plan(self, job: str) -> JobPlan:
        return plan_named(self.plans, job)

