"""An export job's id map filled by real runs, for the ledger's tests (store, CLI, API).

Job ``out`` sends in-memory records to ``syncd.testing.MemoryRemote`` through the
example ``restish`` target. ``fill`` runs it four times so that the id map holds
every kind of row a person meets: records synced, one refused by the remote (a 400:
needs a person), one whose create could not reach the remote (pending, transient)
and one whose update could not (failed, transient).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncd.engine import Request
from syncd.store import Store
from syncd.testing import MemoryRemote, make_engine
from tests import restish

JOB = "out"
UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused at once
#: what ``fill`` leaves: local key -> (state, transient)
EXPECTED = {"0": ("synced", None), "1": ("synced", None), "3": ("synced", None),
            "4": ("synced", None), "5": ("synced", None),
            "6": ("failed", False),  # refused with a 400: needs a person
            "7": ("pending", True),  # its create never reached the remote
            "2": ("failed", True)}  # its update never reached the remote


def records(keys: range | list[int], **names: str) -> list[dict[str, Any]]:
    return [{"id": str(i), "name": names.get(f"i{i}", f"item {i}")} for i in keys]


def export_job(recs: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"source": {"type": "memory", "records": recs},
            "target": {"type": "restish", "url": url, "key": ["id"]},
            "mapping": {"id": "id", "name": "name"}, "batch_rows": 5,
            "retry": {"attempts": 1}}


async def run(store: Store, state_dir: Path, recs: list[dict[str, Any]], url: str) -> Any:
    """One run of job ``out`` over ``recs``; its stored run."""
    engine = make_engine(store, state_dir, {JOB: export_job(recs, url)}, plugins=(restish,))
    run_id, outcome = await engine.run(Request(JOB, "cli"))
    assert outcome.status == "completed", outcome.error
    return store.get_run(run_id)


async def fill(store: Store, state_dir: Path, remote: MemoryRemote) -> None:
    """Leave the id map of job ``out`` as ``EXPECTED`` says, by real runs."""
    await run(store, state_dir, records(range(6)), remote.url)
    remote.fail_next(1, status=400)
    await run(store, state_dir, records(range(7)), remote.url)
    await run(store, state_dir, records([0, 1, 2, 3, 4, 5, 7]), UNREACHABLE)
    await run(store, state_dir, records(range(6), i2="item 2, changed"), UNREACHABLE)
