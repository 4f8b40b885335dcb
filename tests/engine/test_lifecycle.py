"""The engine owns every run's life: whatever made a run, listeners and plugins hear of it.

Runs recorded without executing (a skipped file, a drive that failed, a run cancelled
while nothing ran it, one whose job left the config) are announced like executed ones;
finished runs leave the engine's memory; the run hooks run off the event loop; no
module outside the store queries the run tables.
"""

from __future__ import annotations

import ast
import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd import hookimpl
from syncd.adapters import ItemError
from syncd.api.metrics import Metrics
from syncd.config import validate
from syncd.engine import Request
from syncd.engine.engine import NotCancellable
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.store.claims import Claims
from syncd.tasks import FATAL, supervise
from syncd.triggers.schedule import Scheduler
from tests.conftest import BACKENDS
from tests.engine.test_engine import GatedPlugin, job, make_engine, records
from tests.poll import wait_for

SYNCD = Path(__file__).resolve().parents[2] / "syncd"


class Recorder:
    """A plugin recording each run hook call: (hook, run id, status, thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, threading.Thread]] = []

    @hookimpl
    def syncd_run_started(self, summary: Any) -> None:
        self.calls.append(("started", summary.run_id, summary.status,
                           threading.current_thread()))

    @hookimpl
    def syncd_run_finished(self, summary: Any) -> None:
        self.calls.append(("finished", summary.run_id, summary.status,
                           threading.current_thread()))

    def of(self, run_id: int) -> list[tuple[str, str]]:
        return [(hook, status) for hook, rid, status, _ in self.calls if rid == run_id]


def hooked(store: Any, tmp_path: Path, jobs: dict[str, Any], **kw: Any) -> tuple[Any, Recorder,
                                                                                 list]:
    """An engine with a recording plugin and a listener recording its events."""
    engine = make_engine(store, tmp_path, jobs, **kw)
    recorder = Recorder()
    engine.pm = get_pluginmanager(load_entrypoints=False, plugins=(recorder,))[0]
    events: list[tuple[str, dict[str, Any]]] = []
    engine.listeners.append(lambda kind, data: events.append((kind, data)))
    return engine, recorder, events


def kinds(events: list, run_id: int) -> list[tuple[str, str | None]]:
    return [(kind, data.get("status")) for kind, data in events
            if data.get("run_id") == run_id and kind in ("run_started", "run_finished")]


async def test_a_failed_run_recorded_without_executing_is_announced(store, tmp_path):
    engine, recorder, events = hooked(store, tmp_path, {"j": job(records(2))})
    metrics = Metrics(engine, store)
    engine.listeners.append(metrics)
    error = ItemError("system", "mount_failed", "cannot mount /dev/sdz1")
    run_id = await engine.record_failed("j", "usb", "usb:DRIVE", "cannot mount", [error],
                                        device={"label": "DRIVE"})
    run = store.get_run(run_id)
    assert (run.status, run.trigger, run.error_message) == ("failed", "usb", "cannot mount")
    assert [e.error_code for e in store.errors_of(run_id)] == ["mount_failed"]
    assert kinds(events, run_id) == [("run_started", None), ("run_finished", "failed")]
    assert recorder.of(run_id) == [("started", "in_progress"), ("finished", "failed")]
    scraped = (await metrics.render()).decode()
    assert 'syncd_runs_finished_total{job="j",status="failed"} 1.0' in scraped


async def test_a_skipped_run_is_announced(store, tmp_path):
    engine, recorder, events = hooked(store, tmp_path, {"j": job(records(2))})
    run_id = await engine.record_skipped("j", "watch", "/in/a.csv", "already ingested")
    run = store.get_run(run_id)
    assert (run.status, run.items_skipped) == ("completed", 1)
    assert kinds(events, run_id) == [("run_started", None), ("run_finished", "completed")]
    assert recorder.of(run_id) == [("started", "in_progress"), ("finished", "completed")]


async def test_cancelling_a_run_that_nothing_executes_is_announced(store, tmp_path):
    engine, recorder, events = hooked(store, tmp_path, {"j": job(records(2))})
    run_id = store.create_run(job="j", trigger="api", source_type="memory",
                              source_identifier="memory")
    assert await engine.cancel_run(run_id) == "cancelled"
    assert store.get_run(run_id).status == "cancelled"
    assert kinds(events, run_id) == [("run_finished", "cancelled")]
    assert recorder.of(run_id) == [("finished", "cancelled")]
    with pytest.raises(NotCancellable) as caught:
        await engine.cancel_run(run_id)
    assert caught.value.code == "not_cancellable"


async def test_a_run_another_daemon_executes_is_not_cancelled_here(store, tmp_path):
    engine, recorder, _ = hooked(store, tmp_path, {"j": job(records(2))})
    other = Store(store.db, Claims(holder="elsewhere:1"))  # a live daemon on another host
    run_id = other.create_run(job="j", trigger="api", source_type="memory",
                              source_identifier="memory")
    with pytest.raises(NotCancellable) as caught:
        await engine.cancel_run(run_id)
    assert caught.value.code == "running_elsewhere" and "elsewhere:1" in str(caught.value)
    assert store.get_run(run_id).status == "pending" and recorder.of(run_id) == []


async def test_cancelling_a_running_run_stops_it_after_its_batch(store, tmp_path):
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    engine, recorder, _ = hooked(store, tmp_path,
                                 {"j": job(records(10), source={"type": "gated"})},
                                 plugins=(plugin,))
    run_id = await engine.start(Request("j", "cli"))
    await wait_for(lambda: plugin.active == 1)
    assert await engine.cancel_run(run_id) == "cancelling"
    gate.set()
    assert (await engine.wait(run_id)).status == "cancelled"
    assert recorder.of(run_id) == [("started", "in_progress"), ("finished", "cancelled")]


async def test_a_resumed_run_whose_job_left_the_config_fails_announced(store, tmp_path):
    engine, recorder, events = hooked(store, tmp_path, {"j": job(records(2))})
    run_id = store.create_run(job="gone", trigger="api", source_type="memory",
                              source_identifier="memory")
    assert await engine.resume_all() == []
    assert store.get_run(run_id).status == "failed"
    assert kinds(events, run_id) == [("run_finished", "failed")]
    assert recorder.of(run_id) == [("finished", "failed")]


async def test_run_hooks_run_off_the_event_loop_and_a_slow_one_does_not_block_it(store,
                                                                                tmp_path):
    release = threading.Event()
    entered = threading.Event()

    class Slow:
        @hookimpl
        def syncd_run_finished(self, summary: Any) -> None:
            entered.set()
            assert release.wait(30)

    engine, recorder, _ = hooked(store, tmp_path, {"j": job(records(3))})
    engine.pm.register(Slow())
    run = asyncio.create_task(engine.run(Request("j", "cli")))
    await wait_for(entered.is_set)
    ticks = 0
    for _ in range(5):  # the loop keeps turning while the hook blocks its thread
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not run.done()
    release.set()
    run_id, outcome = await run
    assert outcome.status == "completed"
    loop_thread = threading.current_thread()
    assert [t is loop_thread for _, rid, _, t in recorder.calls if rid == run_id] == [
        False, False]


async def test_an_engine_that_ran_100_runs_holds_none_of_them(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(1))})
    ids = []
    for i in range(100):
        run_id = await engine.start(Request("j", "cli", identifier=f"src{i}"))
        ids.append(run_id)
        if i % 10 == 9:  # some waited on, the others left to end on their own
            await engine.wait(run_id)
    for run_id in ids:
        assert (await engine.wait(run_id)).status == "completed"
    await wait_for(lambda: not engine._tasks)
    assert (engine._tasks, engine._keys, engine._stops) == ({}, {}, {})
    assert engine.running("j", "src0") is None and not engine.is_running(ids[-1])


# -- run queries live in the store ---------------------------------------------------------

RUN_MODELS = {"SyncRun", "SyncError", "IngestedFile"}


def runtime_imports(path: Path) -> set[str]:
    """Names imported from ``syncd.store.models`` outside ``if TYPE_CHECKING:`` blocks."""
    names: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "syncd.store.models":
                names.update(a.name for a in node.names)
            for child in ("body", "orelse", "handlers", "finalbody"):
                visit([n for n in getattr(node, child, []) if isinstance(n, ast.stmt)])

    visit(ast.parse(path.read_text()).body)
    return names


def test_no_module_outside_the_store_queries_the_run_tables():
    offenders = {str(p.relative_to(SYNCD)): sorted(runtime_imports(p) & RUN_MODELS)
                 for folder in ("api", "engine", "triggers") for p in (SYNCD / folder).glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_run_queries(store):
    ids = [store.create_run(job=j, trigger="cli", source_type="memory", source_identifier="x")
           for j in ("a", "a", "b")]
    store.finish(ids[0], "completed")
    store.finish(ids[2], "failed", "boom")
    store.add_errors(ids[2], [ItemError("target", f"e{i}", "m") for i in range(3)])
    stats = store.run_stats(by_job=True)
    assert (stats["total"], stats["completed"], stats["failed"], stats["pending"]) == (3, 1, 1, 1)
    assert stats["byJob"]["a"]["total"] == 2 and stats["byJob"]["b"]["failed"] == 1
    page, more = store.runs_page(limit=2)
    assert [r.id for r in page] == [ids[2], ids[1]] and more == ids[1]
    page, more = store.runs_page(limit=2, before=more)
    assert [r.id for r in page] == [ids[0]] and more is None
    assert [r.id for r in store.runs_page(limit=5, status="failed", job="b")[0]] == [ids[2]]
    errors, total = store.run_errors(ids[2], 2)
    assert [e.error_code for e in errors] == ["e0", "e1"] and total == 3
    assert store.last_run("a").id == ids[1] and store.last_run("zzz") is None
    assert store.status_counts()["in_progress"] == 0
    assert set(store.last_success()) == {"a"}


# -- background tasks that die ------------------------------------------------------------


@pytest.fixture
async def fatal() -> list[tuple[str, BaseException]]:
    """What the loop's exception handler was told died (``syncd run`` then exits 1)."""
    loop = asyncio.get_running_loop()
    died: list[tuple[str, BaseException]] = []
    loop.set_exception_handler(lambda _, ctx: died.append((ctx[FATAL], ctx["exception"]))
                               if FATAL in ctx else loop.default_exception_handler(ctx))
    yield died
    loop.set_exception_handler(None)


async def test_a_supervised_task_that_raises_is_fatal_one_cancelled_is_not(fatal):
    async def broken() -> None:
        raise RuntimeError("broke")

    task = supervise(broken(), "broken")
    await asyncio.gather(task, return_exceptions=True)
    await wait_for(lambda: fatal)
    cancelled = supervise(asyncio.sleep(60), "sleeper")
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    await asyncio.sleep(0)
    assert [(name, str(exc)) for name, exc in fatal] == [("broken", "broke")]


async def test_a_scheduled_callback_that_raises_is_fatal(store, tmp_path, fatal):
    engine = make_engine(store, tmp_path, {"j": job(records(1), every="1h")})

    async def broken_run(request: Request, resume: bool = True) -> Any:
        raise RuntimeError("database gone mad")

    engine.run = broken_run  # type: ignore[method-assign]
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")},
                       "jobs": {"j": job(records(1), every="1h")}})
    scheduler = Scheduler(engine, config)
    scheduler.start()
    try:
        scheduler.scheduler.get_job("job:j").modify(next_run_time=datetime.now(UTC))
        await wait_for(lambda: fatal)
        assert [(name, str(exc)) for name, exc in fatal] == [("schedule job:j",
                                                              "database gone mad")]
    finally:
        scheduler.stop()
