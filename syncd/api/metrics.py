"""Prometheus metrics, in a registry of the app's own (no process-wide globals)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from syncd.api.hostlabel import HostLabelled
from syncd.engine import Engine
from syncd.remote import stats
from syncd.store import Store, conflicts, idmap
from syncd.terms import COUNTERS

OUTCOMES = COUNTERS


class Metrics:
    """Counters fed by engine events; gauges read from the store at scrape time."""

    def __init__(self, engine: Engine, store: Store) -> None:
        self.engine, self.store = engine, store
        self.registry = CollectorRegistry()
        self.runs = Gauge("syncd_runs", "Runs in the store, by status", ["status"],
                          registry=self.registry)
        self.items = Counter("syncd_items", "Items handled by runs finished since start, by "
                             "outcome", ["job", "outcome"], registry=self.registry)
        self.finished = Counter("syncd_runs_finished", "Runs finished since start",
                                ["job", "status"], registry=self.registry)
        self.duration = Histogram("syncd_run_duration_seconds", "Wall time of finished runs",
                                  ["job"], registry=self.registry,
                                  buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400))
        self.last_success = Gauge("syncd_last_success_timestamp_seconds",
                                  "Completion time of each job's last completed run",
                                  ["job"], registry=self.registry)
        self.idmap = Gauge("syncd_idmap_records", "Records in export jobs' id maps, by state",
                           ["job", "state"], registry=self.registry)
        self.conflicts = Gauge("syncd_conflicts_open", "Conflicts waiting for a person",
                               ["job"], registry=self.registry)
        self.notifications = Counter("syncd_notifications", "Run notifications by channel "
                                     "and outcome (sent | failed)", ["channel", "outcome"],
                                     registry=self.registry)
        self.queue = Gauge("syncd_queue_depth", "Runs waiting for a free slot",
                           registry=self.registry)
        self.registry.register(RemoteCollector())

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        """Engine listener: count finished runs (their counters arrive via the store)."""
        if kind == "run_finished":
            self.finished.labels(data["job"], data["status"]).inc()
            self.duration.labels(data["job"]).observe(data.get("duration") or 0.0)
            asyncio.get_running_loop().create_task(self._count_items(data["run_id"]))
        elif kind == "notification":
            self.notifications.labels(data["channel"], data["outcome"]).inc()

    async def _count_items(self, run_id: int) -> None:
        run = await asyncio.to_thread(self.store.get_run, run_id)
        if run is not None:
            for outcome in OUTCOMES:
                self.items.labels(run.job, outcome).inc(getattr(run, f"items_{outcome}"))

    async def render(self) -> bytes:
        await asyncio.to_thread(self._read_store)
        self.queue.set(self.engine.waiting)
        if self.engine.fleet is not None:
            labelled = HostLabelled(self.registry, self.engine.fleet.host)
            return generate_latest(labelled)
        return generate_latest(self.registry)

    def _read_store(self) -> None:
        for status, count in self.store.status_counts().items():
            self.runs.labels(status).set(count)
        for job, completed in self.store.last_success().items():
            self.last_success.labels(job).set(completed.timestamp())
        self.idmap.clear()  # a job whose id map is gone has no series left
        for job, states in idmap.state_counts().items():
            for state, count in states.items():
                self.idmap.labels(job, state).set(count)
        self.conflicts.clear()
        for job, count in conflicts.open_counts().items():
            self.conflicts.labels(job).set(count)


class RemoteCollector(Collector):
    """HTTP requests to remotes, as counted process-wide by ``syncd.remote.stats``."""

    def collect(self) -> Any:
        snap = stats.snapshot()
        requests = CounterMetricFamily("syncd_remote_requests", "HTTP requests to remotes "
                                       "since start, by answer status (error: no answer)",
                                       labels=["remote", "status"])
        for (remote, status), count in sorted(snap.requests.items()):
            requests.add_metric([remote, status], count)
        retries = CounterMetricFamily("syncd_remote_retries", "Requests to remotes sent "
                                      "again after a network error, 429 or 5xx",
                                      labels=["remote"])
        for remote, count in sorted(snap.retries.items()):
            retries.add_metric([remote], count)
        waits = CounterMetricFamily("syncd_remote_rate_limit_wait_seconds", "Time requests "
                                    "waited for a remote's rate limit", labels=["remote"])
        for remote, seconds in sorted(snap.rate_limit_wait_s.items()):
            waits.add_metric([remote], seconds)
        return [requests, retries, waits]
