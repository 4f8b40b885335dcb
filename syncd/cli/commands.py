"""What each foreground command does and prints."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from syncd.adapters import AsyncSource, Source, Target
from syncd.bootstrap import Setup
from syncd.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from syncd.config.schema import DaemonConfig
from syncd.engine import Engine, Request
from syncd.engine.preview import DryRunPlan, describe, load_report
from syncd.errors import JobError, RunConflict, SourceError
from syncd.store import Store
from syncd.store.models import SyncRun


def show_plugins() -> int:
    from syncd.plugins import get_pluginmanager

    _, registry = get_pluginmanager()
    tables: tuple[tuple[str, Mapping[str, type[Source | AsyncSource | Target]]], ...] = (
        ("source", registry.loaded("source")), ("target", registry.loaded("target")))
    for kind, table in tables:
        for name, cls in sorted(table.items()):
            origin = registry.origins[(kind, name)]
            where = f"{origin.plugin} ({origin.distribution or 'local'}) {cls.__module__}"
            print(f"{kind:7} {name:12} {where}  {cls.description}")
    for kind, name, origin in registry.shadowed:
        print(f"{kind:7} {name:12} {origin.plugin}: overridden by an earlier plugin")
    for plugin, why in registry.failed.items():
        print(f"failed  {plugin:12} {why}", file=sys.stderr)
    return EXIT_OK


def check_config(setup: Setup) -> int:
    from syncd.config import dependency_order
    from syncd.triggers.schedule import next_fire_time

    config = setup.config
    print(f"{setup.path}: ok")
    print(f"state_dir {setup.state_dir}, database "
          f"{_database_label(config.daemon.database, setup.state_dir)}, "
          f"api {config.api.listen}")
    order = [name for level in dependency_order(config) for name in level]
    for name in order:
        plan = setup.plans[name]
        job = plan.config
        fire = next_fire_time(job)
        print(f"job {name}: {plan.source_cls.name} -> {plan.target_cls.name}; "
              f"triggers: {'; '.join(job.triggers)}"
              + (f"; next {fire.isoformat()}" if fire else ""))
    if not order:
        print("no jobs configured")
    print(_cleanup_label(config.daemon))
    return EXIT_OK


def _cleanup_label(daemon: DaemonConfig) -> str:
    """When the cleanup runs and what it removes, so it is never a hidden time."""
    from apscheduler.triggers.cron import CronTrigger

    kept = [f"runs and ingested-file records after {daemon.keep_runs_days} days"
            if daemon.keep_runs_days else "runs kept for good",
            f"unavailable records after {daemon.keep_content_days} days"
            if daemon.keep_content_days else "unavailable records kept for good"]
    if not daemon.cleanup:
        return f"cleanup: only by `syncd cleanup` ({'; '.join(kept)})"
    fire = CronTrigger.from_crontab(daemon.cleanup, timezone=UTC).get_next_fire_time(
        None, datetime.now(UTC))
    return f"cleanup {daemon.cleanup!r}: {'; '.join(kept)}; next {fire.isoformat()}"


def cleanup(setup: Setup, dry_run: bool) -> int:
    """``syncd cleanup``: what the daemon's ``[daemon].cleanup`` schedule does, now."""
    from syncd.store.cleanup import clean, content_tables

    store = setup.open_store()
    try:
        cleaned = clean(store, setup.config.daemon, content_tables(setup.plans), dry_run,
                        state_dir=setup.state_dir, jobs=setup.plans.keys())
    finally:
        store.close()
    for line in cleaned.lines():
        print(line)
    if dry_run:
        print("dry run: nothing removed")
    return EXIT_OK


def _database_label(database: object, state_dir: Path) -> str:
    """What the store will open; a SQLite file that cannot be where it is put fails here."""
    from syncd.store.database import check_sqlite_place, redact_url, sqlite_file

    if not database:
        return "SQLite (syncd.db in state_dir)"
    if isinstance(database, str) and database.startswith("sqlite:"):
        path = sqlite_file(database, state_dir)
        if path.parent != state_dir or state_dir.is_dir():  # state_dir is made on first use
            check_sqlite_place(database, path)
        return f"SQLite {path}"
    return redact_url(database) if isinstance(database, str) else str(database)


def sync(setup: Setup, job: str | None, file: str | None, dry_run: bool, all_jobs: bool,
         allow_mass_missing: bool = False) -> int:
    """Run one job (or all, in dependency order) in the foreground."""
    if all_jobs == bool(job):
        print("syncd: error: name a JOB or pass --all", file=sys.stderr)
        return EXIT_USAGE
    if all_jobs and file:
        print("syncd: error: --file needs a single JOB", file=sys.stderr)
        return EXIT_USAGE
    if job and job not in setup.plans:
        raise JobError(f"unknown job {job!r}",
                       hint=f"jobs: {', '.join(setup.plans) or 'none configured'}")
    return asyncio.run(_sync(setup, [job] if job else None, file, dry_run, allow_mass_missing))


async def _sync(setup: Setup, jobs: list[str] | None, file: str | None, dry_run: bool,
                allow_mass_missing: bool = False) -> int:
    from syncd.cli.progress import ProgressBars

    store = await asyncio.to_thread(setup.open_store)
    engine = Engine(store, setup.plans, setup.state_dir,
                    setup.config.daemon.max_concurrent_runs, pm=setup.pm, http=setup.http())
    if setup.config.fleet.enabled:  # runs here; killed, only this host resumes local files
        from syncd.fleet import Affinity

        engine.affinity = Affinity(setup.host, setup.config.fleet.shared_paths)
    engine.listeners.append(ProgressBars())
    interrupted: list[int] = []  # the signal that asked us to stop, if any
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _interrupt, engine, interrupted, sig)
    try:
        if jobs:
            ok = await _one(engine, store, Request(jobs[0], "cli", file, dry_run,
                                                   allow_mass_missing=allow_mass_missing)
                            ) == "completed"
        else:
            ok = await _all(engine, store, setup, dry_run, interrupted, allow_mass_missing)
    finally:
        store.close()
    if interrupted:
        print("interrupted: the run is saved and continues where it stopped on the next "
              "`syncd sync` or daemon start", file=sys.stderr)
        return 128 + interrupted[0]
    return EXIT_OK if ok else EXIT_FAILED


async def _all(engine: Engine, store: Store, setup: Setup, dry_run: bool,
               interrupted: list[int], allow_mass_missing: bool = False) -> bool:
    """Every job, each once its upstreams completed; one whose upstream did not is skipped."""
    from syncd.config import dependency_order

    outcomes: dict[str, asyncio.Task[str]] = {}
    dry_plan = DryRunPlan() if dry_run else None  # creates assumed by the jobs downstream

    async def after_upstreams(name: str) -> str:
        for upstream in setup.config.jobs[name].upstreams:
            status = await outcomes[upstream]
            if status != "completed":
                if not interrupted:
                    print(f"skipped {name}: upstream {upstream} "
                          f"{'was skipped' if status == 'skipped' else status}")
                return "skipped"
        if interrupted:
            return "skipped"
        return await _one(engine, store, Request(name, "cli", None, dry_run,
                                                 allow_mass_missing=allow_mass_missing,
                                                 dry_plan=dry_plan))

    for level in dependency_order(setup.config):  # upstreams first: their tasks exist
        for name in level:
            outcomes[name] = asyncio.ensure_future(after_upstreams(name))
    statuses = await asyncio.gather(*outcomes.values())
    return all(status == "completed" for status in statuses)


def _interrupt(engine: Engine, interrupted: list[int], signum: int) -> None:
    """First signal: pause the runs after their batch, so they stay resumable."""
    if not interrupted:
        interrupted.append(signum)
        engine.shutdown_task = asyncio.ensure_future(engine.shutdown())


async def _one(engine: Engine, store: Store, request: Request) -> str:
    """Run one job and print its summary; returns its status (``not started``)."""
    began = time.monotonic()
    try:
        run_id, outcome = await engine.run(request)
    except RunConflict as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return "not started"
    except SourceError as exc:
        print(f"syncd: {request.job}: {exc}", file=sys.stderr)
        return "not started"
    run = await asyncio.to_thread(store.run, run_id)
    errors = await asyncio.to_thread(store.errors_of, run_id, 10)
    print(summary(run, time.monotonic() - began))
    report = load_report(engine.state_dir, run_id) if run.dry_run else None
    if report is not None:
        print("\n".join(describe(report)))
    if outcome.status != "completed" and outcome.error and not run.error_message:
        print(f"  error: {outcome.error}")  # not recorded: e.g. the disk is full
    for error in errors:
        where = f"{error.item_identifier}: " if error.item_identifier else ""
        print(f"  {error.error_type}/{error.error_code}: {where}{error.error_message}")
    if run.items_failed > len(errors):
        print(f"  … {run.items_failed - len(errors)} more errors in sync_errors")
    return str(outcome.status)


def summary(run: SyncRun, seconds: float) -> str:
    """One line saying what a run did, plus its error if it did not complete."""
    rate = run.items_processed / seconds if seconds > 0 else 0
    label = " (dry run: nothing written)" if run.dry_run else ""
    missing = f", {run.items_missing} missing" if run.items_missing else ""
    text = (f"run {run.id} {run.job} {run.status}{label}: {run.items_processed} processed, "
            f"{run.items_inserted} inserted, {run.items_updated} updated, "
            f"{run.items_unchanged} unchanged, {run.items_skipped} skipped, "
            f"{run.items_failed} failed{missing} in {seconds:.1f}s ({rate:,.0f}/s)")
    if run.error_message and run.status != "completed":
        text += f"\n  error: {run.error_message}"
    return text
