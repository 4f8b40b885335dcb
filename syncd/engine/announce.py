"""Telling the rest of the daemon and the plugins that a run started or finished.

Listeners (the event stream, the metrics, dependencies) are called on the loop; the
``syncd_run_started`` / ``syncd_run_finished`` hooks run in a worker thread, so a slow
plugin never blocks the API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from syncd.adapters import NotifyContext, RunSummary
from syncd.config.notify import NotifyConfig
from syncd.engine.runs import Progress
from syncd.store import Store
from syncd.terms import utc_iso

if TYPE_CHECKING:
    from syncd.store.models import SyncRun

Listener = Callable[[str, dict[str, Any]], None]


class Announcer:
    """Emits run events to listeners and calls the run hooks."""

    def __init__(self, store: Store, pm: pluggy.PluginManager | None) -> None:
        self.store, self.pm = store, pm
        self.listeners: list[Listener] = []
        self.notify = NotifyConfig()  # the [notify] section in force (the daemon sets it)
        self.log = structlog.get_logger("syncd.engine")

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(kind, data)

    def progress_reporter(self) -> Callable[[Progress], None]:
        """A callback for a run's worker thread: progress and item errors, on the loop."""
        loop = asyncio.get_running_loop()

        def report(progress: Progress) -> None:
            data = {"run_id": progress.run_id, "job": progress.job,
                    "processed": progress.processed, "position": progress.position,
                    "size": progress.size, "rate": round(progress.rate, 1)}
            loop.call_soon_threadsafe(self.emit, "progress", data)
            if progress.batch_errors:
                first = progress.batch_errors[0]
                loop.call_soon_threadsafe(self.emit, "error", {
                    "run_id": progress.run_id, "job": progress.job,
                    "count": len(progress.batch_errors),
                    "message": f"{first.item}: {first.message}" if first.item else first.message})

        return report

    async def started(self, run_id: int, job: str) -> None:
        self.emit("run_started", {"run_id": run_id, "job": job})
        await self.hook("syncd_run_started", run_id, "in_progress")

    async def finished(self, run_id: int, job: str, status: str, error: str | None,
                       duration: float = 0.0) -> None:
        self.emit("run_finished", {"run_id": run_id, "job": job, "status": status,
                                   "error": error, "duration": duration})
        await self.hook("syncd_run_finished", run_id)

    async def hook(self, name: str, run_id: int, status: str | None = None) -> None:
        """Call a run hook in a worker thread; a failing plugin is logged, never fatal."""
        if self.pm is None:
            return
        caller = getattr(self.pm.hook, name)
        extra = {"notify": self.notify_context()} if name == "syncd_run_finished" else {}

        def call() -> None:
            run = self.store.get_run(run_id)
            if run is None:
                return
            caller(summary=summarize(self.store, run, status), **extra)

        try:
            await asyncio.to_thread(call)
        except Exception:
            self.log.exception(f"a {name} hook failed", run_id=run_id)

    def notify_context(self) -> NotifyContext:
        """The notify settings in force, and a counter that reaches the loop's listeners
        (the metrics) from any thread. Call on the loop."""
        loop = asyncio.get_running_loop()

        def count(channel: str, outcome: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the daemon is gone
                loop.call_soon_threadsafe(self.emit, "notification",
                                          {"channel": channel, "outcome": outcome})

        return NotifyContext(self.notify, structlog.get_logger("syncd.notify"), count)


def summarize(store: Store, run: SyncRun, status: str | None = None,
              errors: int = 5) -> RunSummary:
    """A stored run as the hooks see it, with its first ``errors`` errors."""
    found, _ = store.run_errors(run.id, errors)
    return RunSummary(
        run.id, run.job, run.trigger, status or run.status, store.counters(run),
        run.error_message, source_identifier=run.source_identifier or "",
        started_at=_iso(run.started_at), completed_at=_iso(run.completed_at),
        attempt=run.attempt,
        errors=tuple({"type": e.error_type, "code": e.error_code, "message": e.error_message,
                      "item": e.item_identifier} for e in found))


def _iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    return utc_iso(datetime.fromisoformat(value) if isinstance(value, str) else value)
