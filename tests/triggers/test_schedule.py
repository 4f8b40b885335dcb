"""Schedules, retries of failed runs, history cleanup, and dependencies between jobs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import Engine, Request, memory, resolve_jobs
from syncd.engine.memory import MemoryTarget
from syncd.plugins import get_pluginmanager
from syncd.store.models import SyncRun
from syncd.triggers.dependencies import Dependencies
from syncd.triggers.schedule import Scheduler, next_fire_time
from tests.conftest import BACKENDS
from tests.engine.test_engine import GatedPlugin, job, records
from tests.poll import wait_for
from tests.syncd_cli import syncd


def setup(store, tmp_path: Path, jobs: dict[str, Any], plugins: tuple = ()) -> tuple:
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(memory, *plugins))
    engine = Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")
    return config, engine


def runs(job_name: str, trigger: str | None = None) -> list[SyncRun]:
    query = SyncRun.select().where(SyncRun.job == job_name)
    if trigger:
        query = query.where(SyncRun.trigger == trigger)
    return list(query.order_by(SyncRun.id))


async def test_an_interval_schedule_fires_repeatedly(store, tmp_path):
    config, engine = setup(store, tmp_path, {"tick": job(records(3), every="0.2s")})
    scheduler = Scheduler(engine, config)
    scheduler.start()
    try:
        await wait_for(lambda: len(runs("tick", "schedule")) >= 2)
    finally:
        scheduler.stop()
    # a run the last fire created goes on after the scheduler stops, even one whose
    # record was still being made when the fire was cancelled: every one completes
    await wait_for(lambda: all(r.status == "completed" for r in runs("tick")))


async def test_a_fire_while_the_job_runs_is_coalesced_not_stacked(store, tmp_path):
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    config, engine = setup(store, tmp_path, {
        "slow": job(records(3), every="0.1s", source={"type": "gated"})}, plugins=(plugin,))
    scheduler = Scheduler(engine, config)
    scheduler.start()
    try:
        await wait_for(lambda: plugin.active == 1)
        # several intervals pass while the run is held: none of them starts another run
        await wait_for(lambda: scheduler.scheduler.get_job("job:slow").next_run_time
                       > datetime.now(UTC) + timedelta(seconds=0.05))
        first_count = len(runs("slow"))
        gate.set()
        await wait_for(lambda: len(runs("slow")) >= first_count + 1)
    finally:
        scheduler.stop()
        gate.set()
    await engine.shutdown()
    assert plugin.peak == 1 and first_count == 1


async def test_retry_failed_retries_only_retryable_failures_once(store, tmp_path):
    flaky = job(records(6), source={"fail_at": {4: 9}})
    config, engine = setup(store, tmp_path, {"flaky": flaky})
    failed, outcome = await engine.run(Request("flaky", "cli"))
    assert outcome.status == "failed"
    _, engine = setup(store, tmp_path, {"flaky": job(records(6))})
    scheduler = Scheduler(engine, config)
    [retry] = await scheduler.retry_failed()
    assert (await engine.wait(retry)).status == "completed"
    assert store.get_run(retry).parent_run == failed
    assert await scheduler.retry_failed() == []  # already taken over by its retry
    assert len(MemoryTarget.tables["t"]) == 6


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_retry_failed_skips_a_failure_a_newer_completed_run_superseded(store, tmp_path):
    flaky = job(records(6), source={"fail_at": {4: 9}})
    config, engine = setup(store, tmp_path, {"flaky": flaky, "other": flaky})
    failed, outcome = await engine.run(Request("flaky", "cli"))
    other, _ = await engine.run(Request("other", "cli"))
    assert outcome.status == "failed"
    _, engine = setup(store, tmp_path, {"flaky": job(records(6)), "other": job(records(6))})
    await engine.run(Request("flaky", "cli", dry_run=True))  # writes nothing: no cover
    scheduler = Scheduler(engine, config)
    newer, outcome = await engine.run(Request("flaky", "cli"))
    assert outcome.status == "completed" and newer > failed
    [retry] = await scheduler.retry_failed()  # only the other job's failure is retried
    assert store.get_run(retry).parent_run == other
    await engine.wait(retry)


async def test_cleanup_removes_history_older_than_keep_runs_days(store, tmp_path):
    config, engine = setup(store, tmp_path, {"j": job(records(1))})
    old, _ = await engine.run(Request("j", "cli"))
    recent, _ = await engine.run(Request("j", "cli"))
    SyncRun.update(created_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=31)).where(
        SyncRun.id == old).execute()
    assert (await Scheduler(engine, config).cleanup()).runs == 1
    assert store.get_run(old) is None and store.get_run(recent) is not None


async def test_a_completed_upstream_run_triggers_its_dependents(store, tmp_path):
    config, engine = setup(store, tmp_path, {
        "up": job(records(2), table="up"),
        "down": job(records(2), table="down", depends_on=["up"]),
        "broken": job(records(2), table="b", source={"fail_at": {0: 9}}),
        "after_broken": job(records(2), table="ab", depends_on=["broken"])})
    engine.listeners.append(Dependencies(engine, config))
    await engine.run(Request("up", "cli"))
    await wait_for(lambda: [r.status for r in runs("down", "dependency")] == ["completed"])
    await engine.run(Request("up", "cli", dry_run=True))
    await engine.run(Request("broken", "cli"))
    await engine.shutdown()
    assert len(runs("down")) == 1  # neither a dry run nor a failure triggers anything
    assert runs("after_broken") == []


def test_check_config_shows_each_schedules_next_fire_time(tmp_path):
    config = tmp_path / "syncd.toml"
    config.write_text(f"""
[daemon]
state_dir = "{tmp_path}"
[jobs.nightly]
schedule = "0 3 * * *"
[jobs.nightly.source]
path = "{tmp_path}/x.csv"
[jobs.nightly.mapping]
external_id = "id"
""")
    result = syncd("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    expected = next_fire_time(validate({"jobs": {"nightly": {"schedule": "0 3 * * *"}}})
                              .jobs["nightly"])
    assert f"next {expected.isoformat()}" in result.stdout
