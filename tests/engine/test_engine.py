"""The engine against in-memory adapters: exact counters, checkpoints, retries, limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint, Source
from syncd.config import validate
from syncd.engine import Engine, Request, memory, resolve_jobs
from syncd.engine.memory import MemoryTarget
from syncd.errors import RunConflict
from syncd.plugins import get_pluginmanager
from syncd.store import Store, checkpoint_of
from tests.poll import wait_for


def records(n: int, **changes: Any) -> list[dict[str, Any]]:
    out = [{"id": str(i), "name": f"item {i}"} for i in range(n)]
    for index, name in changes.items():
        out[int(index.removeprefix("i"))]["name"] = name
    return out


def job(recs: list[dict[str, Any]], table: str = "t", batch_rows: int = 3,
        **extra: Any) -> dict[str, Any]:
    source = {"type": "memory", "records": recs, **extra.pop("source", {})}
    return {"source": source,
            "target": {"type": "memory", "table": table, "key": ["id"]},
            "mapping": {"id": "id", "name": "name"}, "batch_rows": batch_rows,
            "retry": {"attempts": 3, "initial_s": 0.01, "max_s": 0.02}, **extra}


def make_engine(store: Store, tmp_path: Path, jobs: dict[str, Any], limit: int = 4,
                plugins: tuple[Any, ...] = ()) -> Engine:
    config = validate({"daemon": {"state_dir": str(tmp_path / "state"),
                                  "max_concurrent_runs": limit}, "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(memory, *plugins))
    return Engine(store, resolve_jobs(config, registry, "test.toml"), tmp_path / "state", limit)


@pytest.fixture(autouse=True)
def clean_tables() -> Iterator[None]:
    MemoryTarget.tables.clear()
    yield
    MemoryTarget.tables.clear()


async def test_counters_are_exact_across_first_unchanged_and_changed_runs(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(10))})
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "completed"
    assert store.counters(store.get_run(run_id)) == dict(
        processed=10, inserted=10, updated=0, unchanged=0, skipped=0, failed=0, missing=0)
    assert checkpoint_of(store.get_run(run_id)) == {"index": 10}

    run_id, _ = await engine.run(Request("j", "cli"))
    assert store.counters(store.get_run(run_id))["unchanged"] == 10

    engine = make_engine(store, tmp_path, {"j": job(records(10, i3="renamed"))})
    run_id, _ = await engine.run(Request("j", "cli"))
    run = store.get_run(run_id)
    assert (run.items_updated, run.items_unchanged, run.items_inserted) == (1, 9, 0)
    assert MemoryTarget.tables["t"][("3",)]["name"] == "renamed"


async def test_plugins_hear_of_every_finished_run(store, tmp_path):
    heard = []

    class Listener:
        @hookimpl
        def syncd_run_finished(self, summary):
            heard.append((summary.job, summary.status, summary.counters["inserted"]))

    engine = make_engine(store, tmp_path, {"j": job(records(4))})
    engine.pm = get_pluginmanager(load_entrypoints=False, plugins=(Listener(),))[0]
    await engine.run(Request("j", "cli"))
    assert heard == [("j", "completed", 4)]


async def test_a_record_without_its_key_is_a_validation_error_and_the_rest_syncs(store,
                                                                                 tmp_path):
    recs = records(5)
    recs[2]["id"] = ""
    engine = make_engine(store, tmp_path, {"j": job(recs)})
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "completed"
    run = store.get_run(run_id)
    assert (run.items_processed, run.items_inserted, run.items_failed) == (5, 4, 1)
    [error] = store.errors_of(run_id)
    assert (error.error_type, error.error_code, error.item_identifier) == (
        "validation", "missing_key", "record 2")


async def test_transient_failures_are_retried_from_the_checkpoint(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(10), source={"fail_at": {4: 2}})})
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "completed"
    run = store.get_run(run_id)
    # the batch cut short by the failure is read again, the committed ones are not
    assert (run.items_processed, run.items_inserted) == (10, 10)
    assert len(MemoryTarget.tables["t"]) == 10


async def test_exhausted_retries_fail_the_run_with_a_retryable_error(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(10), source={"fail_at": {4: 9}})})
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "failed"
    run = store.get_run(run_id)
    assert run.items_processed == 3 and checkpoint_of(run) == {"index": 3}
    [error] = store.errors_of(run_id)
    assert error.is_retryable and error.error_type == "network"


async def test_shutdown_pauses_a_run_and_resume_finishes_it_exactly_once(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(10))})
    engine.closing = True  # as if SIGTERM came during the first batch
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "pending"
    assert 0 < store.get_run(run_id).items_processed < 10

    engine = make_engine(store, tmp_path, {"j": job(records(10))})
    assert await engine.resume_all() == [run_id]
    assert (await engine.wait(run_id)).status == "completed"
    run = store.get_run(run_id)
    assert (run.status, run.items_processed, run.items_inserted) == ("completed", 10, 10)


async def test_cancel_stops_a_run_after_its_batch(store, tmp_path):
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    engine = make_engine(store, tmp_path, {"j": job(records(10), source={"type": "gated"})},
                         plugins=(plugin,))
    run_id = await engine.start(Request("j", "cli"))
    await wait_for(lambda: plugin.active == 1)  # reading its first batch
    assert engine.cancel(run_id)
    gate.set()
    outcome = await engine.wait(run_id)
    assert outcome.status == "cancelled"
    run = store.get_run(run_id)
    assert run.status == "cancelled" and run.items_processed == 3
    assert engine.cancel(run_id) is False  # no longer running


async def test_a_run_cancelled_while_queued_never_starts(store, tmp_path):
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    jobs = {"a": job(records(3), table="a", source={"type": "gated"}),
            "b": job(records(3), table="b")}
    engine = make_engine(store, tmp_path, jobs, limit=1, plugins=(plugin,))
    first = await engine.start(Request("a", "cli"))
    queued = await engine.start(Request("b", "cli"))
    await wait_for(lambda: plugin.active == 1 and engine.waiting == 1)
    assert engine.cancel(queued)
    gate.set()
    assert (await engine.wait(queued)).status == "cancelled"
    assert (await engine.wait(first)).status == "completed"
    assert store.get_run(queued).items_processed == 0 and "b" not in MemoryTarget.tables


async def test_retry_continues_a_failed_run_from_its_checkpoint(store, tmp_path):
    failing = job(records(10), source={"fail_at": {4: 9}})
    engine = make_engine(store, tmp_path, {"j": failing})
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "failed"
    engine = make_engine(store, tmp_path, {"j": job(records(10))})
    retry_id = await engine.retry(run_id)
    assert (await engine.wait(retry_id)).status == "completed"
    retry = store.get_run(retry_id)
    assert (retry.parent_run, retry.attempt, retry.trigger) == (run_id, 2, "retry")
    assert retry.items_processed == 7  # the 3 committed before the failure are not redone
    assert len(MemoryTarget.tables["t"]) == 10


async def test_a_second_run_of_the_same_job_and_source_is_refused(store, tmp_path):
    gate = threading.Event()
    engine = make_engine(store, tmp_path, {"j": job(records(3), source={"type": "gated"})},
                         plugins=(GatedPlugin(gate),))
    first = await engine.start(Request("j", "cli"))
    with pytest.raises(RunConflict):
        await engine.start(Request("j", "cli"))
    gate.set()
    assert (await engine.wait(first)).status == "completed"


async def test_at_most_max_concurrent_runs_execute_at_once(store, tmp_path):
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    jobs = {f"j{i}": job(records(2), table=f"t{i}", source={"type": "gated"}) for i in range(4)}
    engine = make_engine(store, tmp_path, jobs, limit=2, plugins=(plugin,))
    ids = [await engine.start(Request(name, "cli")) for name in jobs]
    await wait_for(lambda: plugin.active == 2)
    await asyncio.sleep(0)  # give a third run every chance to start if the limit leaked
    assert plugin.active == 2
    gate.set()
    outcomes = [await engine.wait(i) for i in ids]
    assert [o.status for o in outcomes] == ["completed"] * 4
    assert plugin.peak == 2


@pytest.mark.parametrize("on_missing,expected", [("mark_unavailable", {"4": False}),
                                                 ("delete", {})])
async def test_on_missing_after_a_full_sync(store, tmp_path, on_missing, expected):
    engine = make_engine(store, tmp_path, {"j": job(records(5), on_missing=on_missing)})
    await engine.run(Request("j", "cli"))
    engine = make_engine(store, tmp_path, {"j": job(records(4), on_missing=on_missing)})
    run_id, _ = await engine.run(Request("j", "cli"))
    assert store.get_run(run_id).items_missing == 1
    table = MemoryTarget.tables["t"]
    assert {k[0]: v["_available"] for k, v in table.items() if k[0] == "4"} == expected
    assert all(table[(str(i),)]["_available"] for i in range(4))


async def test_dry_run_counts_without_writing(store, tmp_path):
    engine = make_engine(store, tmp_path, {"j": job(records(4))})
    run_id, outcome = await engine.run(Request("j", "cli", dry_run=True))
    assert outcome.status == "completed"
    assert store.get_run(run_id).items_inserted == 4
    assert MemoryTarget.tables["t"] == {}




class GatedPlugin:
    """Registers a source that blocks until ``gate`` opens, counting runs inside it."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate, self.active, self.peak = gate, 0, 0
        self.lock = threading.Lock()
        plugin = self

        class GatedSource(memory.MemorySource):
            name = "gated"

            def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                     batch_rows: int) -> Iterator[Batch]:
                with plugin.lock:
                    plugin.active += 1
                    plugin.peak = max(plugin.peak, plugin.active)
                try:
                    assert plugin.gate.wait(30)
                    yield from super().read(fields, checkpoint, batch_rows)
                finally:
                    with plugin.lock:
                        plugin.active -= 1

        self.source: type[Source] = GatedSource

    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        registry.add_source(self.source)
