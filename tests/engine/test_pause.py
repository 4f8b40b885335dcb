"""A stop that cuts a record target's batch short (shutdown, SIGTERM): what was sent is
settled, the rest of the batch is read again on resume, and nothing is lost or sent
twice. A browser target with a large batch stops within one record, not one batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import Field

from syncd import hookimpl
from syncd.adapters import Change, Options, RecordTarget, Result, RunContext, TargetSchema
from syncd.engine import Engine, Request
from syncd.store import Store
from syncd.store.models import IdMap, SyncError
from tests.engine.test_engine import make_engine
from tests.poll import wait_until


class Pausing:
    """A serial record target that asks the engine to shut down after ``after`` creates,
    and goes on only once the run sees the stop (as SIGTERM mid-batch would)."""

    def __init__(self, after: int) -> None:
        self.after, self.created = after, list[str]()
        self.engine: Engine | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        plugin = self

        class PausingTarget(RecordTarget):
            name = "pausing"

            class Options(Options):
                key: list[str] = Field(["id"], description="fields identifying a record")

            def open(self, schema: TargetSchema, ctx: RunContext) -> None:
                self.ctx = ctx

            def apply(self, change: Change) -> Result:
                plugin.created.append(change.key)
                if len(plugin.created) == plugin.after:
                    assert plugin.engine is not None and plugin.loop is not None
                    asyncio.run_coroutine_threadsafe(plugin.engine.shutdown(), plugin.loop)
                    wait_until(self.ctx.cancelled, message=lambda: "the stop never came")
                return Result("created", f"r{change.key}")

        self.target = PausingTarget

    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        registry.add_target(self.target)


def spec(count: int) -> dict[str, Any]:
    return {"source": {"type": "memory", "records": [{"id": str(i), "name": f"n{i}"}
                                                     for i in range(count)]},
            "target": {"type": "pausing", "key": ["id"]},
            "mapping": {"id": "id", "name": "name"}, "batch_rows": 5}


async def test_a_stop_mid_batch_settles_what_was_sent_and_resumes_the_rest(
        store: Store, tmp_path: Path) -> None:
    plugin = Pausing(after=7)  # two records into the second batch of five
    engine = make_engine(store, tmp_path, {"out": spec(12)}, plugins=(plugin,))
    plugin.engine, plugin.loop = engine, asyncio.get_running_loop()
    run_id, outcome = await engine.run(Request("out", "cli"))
    assert outcome.status == "pending"  # paused, to be resumed
    assert plugin.created == [str(i) for i in range(7)]
    assert {r.local_key for r in IdMap.select().where(IdMap.state == "synced")} == \
        {str(i) for i in range(7)}  # what was sent is in the id map at once
    assert store.counters(store.run(run_id))["processed"] == 5  # the first batch only

    again = make_engine(store, tmp_path, {"out": spec(12)}, plugins=(plugin,))
    assert await again.resume_all() == [run_id]
    assert (await again.wait(run_id)).status == "completed"
    assert sorted(plugin.created, key=int) == [str(i) for i in range(12)]  # each once
    counters = store.counters(store.run(run_id))
    assert (counters["processed"], counters["inserted"], counters["unchanged"],
            counters["failed"]) == (12, 10, 2, 0)
    assert SyncError.select().count() == 0  # a pause is not a record's error
