"""A run whose creation outlives its caller is started all the same (the scheduler
stopping, an API client hanging up): it must not wait for the next daemon start."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from syncd.engine import Request
from syncd.store import Store
from tests.engine.test_engine import job, make_engine, records
from tests.poll import wait_for


async def test_a_caller_cancelled_while_its_run_is_made_leaves_it_started(tmp_path):
    store = Store.open("", tmp_path / "state")
    engine = make_engine(store, tmp_path, {"j": job(records(7))})
    locks = tmp_path / "state" / "locks"
    writer = sqlite3.connect(tmp_path / "state" / "syncd.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the run's record waits for this write lock
    try:
        start = asyncio.create_task(engine.start(Request("j", "schedule")))
        await wait_for(lambda: locks.exists() and any(locks.iterdir()))  # past its lock
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    await wait_for(lambda: (run := store.last_run("j")) and run.status == "completed")
    run = store.last_run("j")
    assert run is not None and run.items_inserted == 7
    store.close()
