"""An ``AsyncSource`` is read on the run's own event loop and always closed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from syncd import hookimpl
from syncd.adapters import AsyncSource, Batch, Checkpoint, RunContext
from syncd.engine import Request
from syncd.engine.memory import MemoryTarget
from tests.engine.test_engine import make_engine

LOOPS: list[int] = []


class CountingSource(AsyncSource):
    """``n`` records, one batch per ``batch_rows``, awaiting between them like a client would."""

    name = "counting"
    closed = 0
    opened_with: RunContext | None = None

    @property
    def identifier(self) -> str:
        return "counting"

    def open(self, ctx: RunContext) -> None:
        CountingSource.opened_with = ctx

    async def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                   batch_rows: int) -> AsyncIterator[Batch]:
        LOOPS.append(id(asyncio.get_running_loop()))
        start = checkpoint["next"] if checkpoint else 0
        for first in range(start, 10, batch_rows):
            await asyncio.sleep(0)
            ids = range(first, min(first + batch_rows, 10))
            yield Batch([(str(i), f"item {i}") for i in ids], [f"record {i}" for i in ids],
                        {"next": ids[-1] + 1})

    async def aclose(self) -> None:
        CountingSource.closed += 1


class Plugin:
    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        registry.add_source(CountingSource)


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    MemoryTarget.tables.clear()
    CountingSource.closed = 0
    LOOPS.clear()
    yield
    MemoryTarget.tables.clear()


async def test_an_async_source_is_read_off_the_daemon_loop_and_closed(store, tmp_path):
    spec = {"source": {"type": "counting"}, "target": {"type": "memory", "key": ["id"]},
            "mapping": {"id": "id", "name": "name"}, "batch_rows": 3}
    engine = make_engine(store, tmp_path, {"j": spec}, plugins=(Plugin(),))
    run_id, outcome = await engine.run(Request("j", "cli"))
    assert outcome.status == "completed"
    assert len(MemoryTarget.tables["memory"]) == 10
    assert store.counters(store.get_run(run_id))["inserted"] == 10
    assert id(asyncio.get_running_loop()) not in LOOPS  # never on the daemon's loop
    assert CountingSource.closed == 1
    ctx = CountingSource.opened_with
    assert ctx is not None and ctx.run_id == run_id and ctx.sql is None
    assert threading.current_thread() is threading.main_thread()
