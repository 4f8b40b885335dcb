"""Schedules: cron and interval jobs, retrying failed runs, and the cleanup.

APScheduler 3's ``AsyncIOScheduler`` fires on the daemon's loop. Each job has at most
one scheduled run in flight (``max_instances=1``) and missed fires are coalesced, so a
schedule that fires while its job still runs is skipped, not stacked.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.config.schema import Config, JobConfig
from syncd.engine import Engine, Request
from syncd.errors import RunConflict, SyncdError
from syncd.store.cleanup import Cleaned, clean, content_tables
from syncd.tasks import report
from syncd.triggers.digest import digest_trigger, send_digest
from syncd.triggers.ticks import fire_in_fleet, first_in_fleet


def job_trigger(job: JobConfig) -> BaseTrigger | None:
    if job.schedule:
        return CronTrigger.from_crontab(job.schedule, timezone=UTC)
    if job.every:
        # counted from the epoch: every daemon of a fleet fires at the same instants
        return IntervalTrigger(seconds=job.every.total_seconds(), timezone=UTC,
                               start_date=datetime(1970, 1, 1, tzinfo=UTC))
    return None


def next_fire_time(job: JobConfig, now: datetime | None = None) -> datetime | None:
    """When the job's schedule fires next (for ``check-config`` and ``/v1/jobs``)."""
    trigger = job_trigger(job)
    if trigger is None:
        return None
    now = now or datetime.now(UTC)
    return trigger.get_next_fire_time(None, now)


class Scheduler:
    """Starts runs when schedules fire."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine, self.config = engine, config
        self.log = structlog.get_logger("syncd.schedule")
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 60})

    def start(self) -> None:
        for name, job in self.config.jobs.items():
            trigger = job_trigger(job)
            if trigger is not None:
                self.scheduler.add_job(self.fire, trigger, args=[name], id=f"job:{name}",
                                       name=f"run {name}")
        daemon = self.config.daemon
        self.scheduler.add_job(self.retry_failed, CronTrigger.from_crontab(
            daemon.retry_failed, timezone=UTC), id="retry_failed", name="retry failed runs")
        if daemon.cleanup:
            self.scheduler.add_job(self.cleanup, CronTrigger.from_crontab(
                daemon.cleanup, timezone=UTC), id="cleanup",
                name="remove old runs, ingested-file records and unavailable content")
        digest = digest_trigger(self.config.notify)
        if digest is not None:
            self.scheduler.add_job(send_digest, digest, args=[self.engine], id="digest",
                                   name="send the daily notification digest")
        self.scheduler.add_listener(self._died, EVENT_JOB_ERROR)
        self.scheduler.start()

    def _died(self, event: JobExecutionEvent) -> None:
        """A scheduled callback raised what it does not expect: the daemon must restart."""
        if isinstance(event.exception, asyncio.CancelledError):  # stopped with the scheduler
            return
        report(f"schedule {event.job_id}", event.exception, self.scheduler._eventloop)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def reload(self, config: Config) -> None:
        """Replace every schedule with those of a reloaded config."""
        self.stop()
        self.config = config
        self.scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
        self.start()

    async def fire(self, job: str) -> None:
        """One scheduled run of ``job``; waits for it so fires never stack."""
        if self.engine.fleet is not None:
            try:
                run_id = await fire_in_fleet(self.engine, job, self.config.jobs[job])
            except SyncdError as exc:
                self.log.error("scheduled run could not be queued", job=job, error=str(exc))
                return
            self.log.info("schedule fired" if run_id else "schedule fired elsewhere",
                          job=job, run_id=run_id)
            return
        try:
            run_id, outcome = await self.engine.run(Request(job, "schedule"))
        except RunConflict as exc:
            self.log.info("schedule skipped: the job is running", job=job, reason=str(exc))
            return
        except SyncdError as exc:
            self.log.error("scheduled run could not start", job=job, error=str(exc))
            return
        self.log.info("scheduled run finished", job=job, run_id=run_id, status=outcome.status)

    async def retry_failed(self) -> list[int]:
        """Retry, from their checkpoints, the failed runs with a retryable error."""
        started: list[int] = []
        if not await first_in_fleet(self.engine, "retry_failed"):
            return started
        for run_id in await asyncio.to_thread(self.engine.store.retryable_failures):
            try:
                started.append(await self.engine.retry(run_id))
            except SyncdError as exc:
                self.log.warning("retry skipped", failed_run=run_id, reason=str(exc))
        if started:
            self.log.info("retrying failed runs", runs=started)
        return started

    async def cleanup(self) -> Cleaned:
        """``[daemon].cleanup``: what ``syncd cleanup`` does, on the daemon's schedule."""
        daemon = self.config.daemon
        if not await first_in_fleet(self.engine, "cleanup"):
            return Cleaned(dry_run=False)
        tables = content_tables(self.engine.plans)
        cleaned = await asyncio.to_thread(clean, self.engine.store, daemon, tables,
                                          state_dir=self.engine.state_dir,
                                          jobs=self.engine.plans.keys())
        self.log.info("cleanup done", runs=cleaned.runs, errors=cleaned.errors,
                      artifacts=cleaned.artifacts, snapshots=cleaned.snapshots,
                      ingested_files=cleaned.ingested_files, content=cleaned.content,
                      keep_runs_days=daemon.keep_runs_days,
                      keep_content_days=daemon.keep_content_days)
        return cleaned
