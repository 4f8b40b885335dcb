"""Record targets through the id map (the outbox), against a real HTTP server.

The example adapter of ``tests/restish.py`` sends to ``syncd.testing.MemoryRemote``;
these tests check what the engine promises every such target: unchanged records
send nothing, a create whose answer is lost is not repeated, a kill at any instant
never creates a remote record twice, errors are item errors of the right type.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.engine import Request
from syncd.store import Store
from syncd.store.models import IdMap, SyncError
from syncd.testing import MemoryRemote
from tests import restish
from tests.conftest import BACKENDS
from tests.engine.test_engine import make_engine
from tests.poll import wait_until


def records(n: int, **changes: str) -> list[dict[str, Any]]:
    out = [{"id": str(i), "name": f"item {i}"} for i in range(n)]
    for index, name in changes.items():
        out[int(index.removeprefix("i"))]["name"] = name
    return out


def export(recs: list[dict[str, Any]], url: str, **extra: Any) -> dict[str, Any]:
    return {"source": {"type": "memory", "records": recs},
            "target": {"type": "restish", "url": url, "key": ["id"]},
            "mapping": {"id": "id", "name": "name"}, "batch_rows": 5,
            "retry": {"attempts": 2, "initial_s": 0.01, "max_s": 0.02}, **extra}


@pytest.fixture
def remote() -> Iterator[MemoryRemote]:
    with MemoryRemote() as r:
        yield r


async def sync(store: Store, tmp_path: Path, spec: dict[str, Any], **request: Any) -> Any:
    engine = make_engine(store, tmp_path, {"out": spec}, plugins=(restish,))
    run_id, outcome = await engine.run(Request("out", "cli", **request))
    run = store.get_run(run_id)
    return run, outcome


def states() -> dict[str, tuple[str, str | None]]:
    return {r.local_key: (r.state, r.remote_id) for r in IdMap.select()}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_creates_then_sends_nothing_for_unchanged_then_updates_and_deletes(
        store, tmp_path, remote):
    run, outcome = await sync(store, tmp_path, export(records(12), remote.url))
    assert outcome.status == "completed", outcome.error
    assert store.counters(run)["inserted"] == 12 and len(remote.items) == 12
    assert all(state == "synced" and rid for state, rid in states().values())

    sent = len(remote.requests)
    run, _ = await sync(store, tmp_path, export(records(12), remote.url))
    assert store.counters(run)["unchanged"] == 12
    assert len(remote.requests) == sent  # reads are free, and there were none to make

    changed = records(11, i3="renamed")  # one changed, the last one gone
    run, _ = await sync(store, tmp_path, export(changed, remote.url, on_missing="delete"))
    counters = store.counters(run)
    assert (counters["updated"], counters["unchanged"], counters["missing"]) == (1, 10, 1)
    assert len(remote.items) == 11
    assert remote.items[states()["3"][1]]["name"] == "renamed"
    assert states()["11"][0] == "deleted"


async def test_a_create_whose_answer_is_lost_is_not_sent_twice(store, tmp_path, remote):
    remote.die_after_create_next(1)  # carried out; the connection drops before the answer
    run, outcome = await sync(store, tmp_path, export(records(6), remote.url))
    assert outcome.status == "completed", outcome.error
    assert len(remote.items) == 6 and remote.replayed == 1  # the retry carried the same key
    assert store.counters(run)["inserted"] == 6


async def test_429_is_retried_after_retry_after_and_a_400_fails_only_its_record(
        store, tmp_path, remote):
    remote.fail_next(2, status=429, retry_after=0.05)
    run, outcome = await sync(store, tmp_path, export(records(3), remote.url))
    assert outcome.status == "completed" and len(remote.items) == 3

    remote.fail_next(1, status=400)
    run, outcome = await sync(store, tmp_path, export(records(4), remote.url))
    assert outcome.status == "completed"
    assert store.counters(run)["failed"] == 1
    [error] = SyncError.select().where(SyncError.sync_run_id == run.id)
    assert (error.error_type, error.error_code, error.is_retryable) == ("target", "http_400",
                                                                          False)
    assert states()["3"][0] == "failed"
    run, _ = await sync(store, tmp_path, export(records(4), remote.url))  # the next run
    assert store.counters(run)["inserted"] == 1 and len(remote.items) == 4


async def test_a_dry_run_sends_nothing_and_says_what_it_would_do(store, tmp_path, remote):
    run, outcome = await sync(store, tmp_path, export(records(5), remote.url), dry_run=True)
    assert outcome.status == "completed"
    assert store.counters(run)["inserted"] == 5
    assert remote.requests == [] and IdMap.select().count() == 0


async def test_an_unreachable_remote_is_a_retryable_network_error(store, tmp_path):
    run, outcome = await sync(store, tmp_path, export(records(2), "http://127.0.0.1:9"))
    assert outcome.status == "completed" and store.counters(run)["failed"] == 2
    types = {(e.error_type, e.is_retryable) for e in
             SyncError.select().where(SyncError.sync_run_id == run.id)}
    assert types == {("network", True)}
    assert {s for s, _ in states().values()} == {"pending"}  # asked first on the next run


# -- kill -9 at any instant --------------------------------------------------------

RUNNER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from syncd.config import validate
    from syncd.engine import Engine, Request, memory, resolve_jobs
    from syncd.plugins import get_pluginmanager
    from syncd.store import Store
    from tests import restish

    url, state, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    records = [{"id": str(i), "name": f"item {i}"} for i in range(n)]
    job = {"source": {"type": "memory", "records": records},
           "target": {"type": "restish", "url": url, "key": ["id"]},
           "mapping": {"id": "id", "name": "name"}, "batch_rows": 7}
    config = validate({"daemon": {"state_dir": str(state)}, "jobs": {"out": job}})
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(memory, restish))
    store = Store.open("", state)
    engine = Engine(store, resolve_jobs(config, registry, "t"), state, 1)

    async def main():
        _, outcome = await engine.run(Request("out", "cli"))
        print(outcome.status, flush=True)

    asyncio.run(main())
""")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_killed_at_any_instant_never_creates_a_remote_record_twice(
        tmp_path: Path, remote: MemoryRemote, seed: int) -> None:
    rows, rng = 120, random.Random(seed)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = [sys.executable, str(script), remote.url, str(state), str(rows)]
    for _ in range(6):  # killed after a random number of requests reached the remote
        before = len(remote.requests)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stop_at = before + rng.randint(1, rows // 2)
        try:
            wait_until(lambda p=proc, at=stop_at: len(remote.requests) >= at
                       or p.poll() is not None, 60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "completed", done.stderr[-2000:]
    keys = sorted(item["key"] for item in remote.items.values())
    assert keys == sorted(str(i) for i in range(rows)), "a record was created twice or lost"
