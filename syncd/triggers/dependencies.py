"""Dependencies: a completed run of a job triggers the jobs that depend on it."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from syncd.config.schema import Config
from syncd.engine import Engine, Request
from syncd.errors import RunConflict, SyncdError


class Dependencies:
    """An engine listener starting downstream jobs (trigger ``dependency``)."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.log = structlog.get_logger("syncd.dependencies")
        self.tasks: set[asyncio.Task[None]] = set()
        self.reload(config)

    def reload(self, config: Config) -> None:
        self.downstream: dict[str, list[str]] = {}
        for name, job in config.jobs.items():
            for upstream in job.upstreams:
                self.downstream.setdefault(upstream, []).append(name)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind != "run_finished" or data["status"] != "completed":
            return
        for job in self.downstream.get(data["job"], []):
            task = asyncio.get_running_loop().create_task(self._start(job, data))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _start(self, job: str, upstream: dict[str, Any]) -> None:
        run = await asyncio.to_thread(self.engine.store.get_run, upstream["run_id"])
        if run is None or run.dry_run:
            return
        try:
            run_id = await self.engine.start(Request(job, "dependency"))
        except RunConflict:
            self.log.info("already running; the dependency run is coalesced", job=job,
                          upstream=upstream["job"])
        except SyncdError as exc:
            self.log.error("dependent run could not start", job=job, error=str(exc),
                           upstream=upstream["job"])
        else:
            self.log.info("dependent run started", job=job, run_id=run_id,
                          upstream=upstream["job"], upstream_run=upstream["run_id"])
