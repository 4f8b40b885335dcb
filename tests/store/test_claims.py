"""Run claims in the store: two processes sharing a database never execute the same run.

A file lock only keeps runs apart inside one ``state_dir``; these tests point several
stores, engines and real ``syncd`` processes at one database and check that a run
held by a live process is left alone, that an expired or orphaned claim is taken
over, and that a process which lost its claim can no longer write to the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import peewee as pw
import pytest

from syncd.engine import Request
from syncd.engine.memory import MemoryTarget
from syncd.errors import ClaimLost
from syncd.store import Store
from syncd.store.claims import Claims
from syncd.store.models import SyncRun, utcnow
from tests.conftest import BACKENDS
from tests.engine.test_engine import GatedPlugin, job, make_engine, records
from tests.poll import wait_until


@pytest.fixture(autouse=True)
def clean_tables() -> Iterator[None]:
    MemoryTarget.tables.clear()
    yield
    MemoryTarget.tables.clear()


def other(store: Store, holder: str, lease_s: float = 30.0) -> Store:
    """A second process's view of the same database, under its own holder name."""
    return Store(store.db, Claims(holder, lease_s))


def new_run(store: Store) -> int:
    return store.create_run(job="j", trigger="cli", source_type="memory",
                            source_identifier="memory")


def expired_run(store: Store, holder: str) -> int:
    """A run whose holder stopped renewing its lease a while ago."""
    run_id = new_run(other(store, holder))
    (SyncRun.update({SyncRun.lease_until: utcnow() - timedelta(seconds=5)})
     .where(SyncRun.id == run_id).execute())
    return run_id


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_a_live_claim_keeps_the_run_until_its_lease_lapses(store: Store) -> None:
    a = other(store, "host-a:1", lease_s=0.3)
    run_id = new_run(a)
    b = other(store, "host-b:2")
    assert b.claims.claim(run_id) == "host-a:1"

    wait_until(lambda: b.claims.claim(run_id) is None, timeout=10,
               message=lambda: "the lapsed lease was never taken over")
    assert SyncRun.get_by_id(run_id).claimed_by == "host-b:2"
    assert a.claims.renew([run_id]) == {run_id}  # a learns it lost the run
    with pytest.raises(ClaimLost):  # and can no longer move its checkpoint
        a.advance(run_id, {"processed": 5}, {"index": 5})
    with a.atomic():
        a.finish(run_id, "failed", "stale writer")
    assert SyncRun.get_by_id(run_id).status == "pending"  # untouched by the loser


def test_a_dead_process_of_this_host_is_taken_over_at_once(store: Store) -> None:
    dead = subprocess.Popen(["true"])  # a pid that no longer runs
    dead.wait()
    orphan = other(store, f"{socket.gethostname()}:{dead.pid}", lease_s=3600)
    run_id = new_run(orphan)
    assert other(store, "host-b:2").claims.claim(run_id) is None


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_two_racing_claims_of_a_free_run_have_one_winner(store: Store) -> None:
    run_id = expired_run(store, "host-x:1")
    claimants = [Claims(f"host-{i}:{i}") for i in range(4)]
    barrier = threading.Barrier(len(claimants))
    results: dict[str, str | None] = {}

    def race(claims: Claims) -> None:
        barrier.wait()
        results[claims.holder] = claims.claim(run_id)
        store.db.close()

    threads = [threading.Thread(target=race, args=(c,)) for c in claimants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [h for h, lost_to in results.items() if lost_to is None]
    assert len(winners) == 1, results
    assert SyncRun.get_by_id(run_id).claimed_by == winners[0]


async def test_a_second_engine_leaves_a_running_run_to_the_first(store: Store,
                                                                tmp_path: Path) -> None:
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    spec = job(records(20), source={"type": "gated"})
    first = make_engine(other(store, "host-a:1"), tmp_path / "a", {"j": spec},
                        plugins=(plugin,))
    second = make_engine(other(store, "host-b:2"), tmp_path / "b", {"j": spec},
                         plugins=(plugin,))
    run_id = await first.start(Request("j", "cli"))
    await asyncio.to_thread(wait_until, lambda: plugin.active == 1, 10)

    assert await second.resume_all() == []  # its own state_dir: no file lock stops it
    gate.set()
    outcome = await first.wait(run_id)
    assert outcome.status == "completed"
    assert store.counters(store.get_run(run_id))["processed"] == 20


async def test_an_expired_claim_is_resumed_by_another_engine(store: Store,
                                                            tmp_path: Path) -> None:
    spec = job(records(7))
    run_id = expired_run(store, "far-away-host:1")
    engine = make_engine(other(store, "host-b:2"), tmp_path / "b", {"j": spec})
    assert await engine.resume_all() == [run_id]
    assert (await engine.wait(run_id)).status == "completed"
    assert SyncRun.get_by_id(run_id).claimed_by == "host-b:2"
    assert SyncRun.get_by_id(run_id).lease_until is None  # released when it finished


# -- two real processes on one PostgreSQL database -------------------------------------

ROWS = 50_000


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
def test_a_daemon_started_beside_a_running_sync_does_not_run_it_too(
        database_url: str, tmp_path: Path) -> None:
    """The issue's report: two processes on one database ran one run, 79,500 of 50,000."""
    from tests.crashkit import Workspace, write_config, write_csv

    shared_csv = tmp_path / "music.csv"
    write_csv(shared_csv, ROWS, seed=7)
    database = f'database = {json.dumps(database_url)}\n'
    spaces = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        extra = ("[usb]\nenabled = false\n[api]\n"
                 f"listen = {json.dumps('unix:' + str(root / 'api.sock'))}\n")
        config = write_config(root, batch_rows=500, daemon_extra=database, extra=extra)
        spaces.append(Workspace(root, config, shared_csv))
    a, b = spaces
    db = pw.PostgresqlDatabase(database_url.rsplit("/", 1)[1], host="127.0.0.1",
                               user="postgres")

    def run_row() -> tuple[Any, ...] | None:
        try:
            return db.execute_sql("SELECT id, status, items_processed, claimed_by "
                                  "FROM sync_runs ORDER BY id LIMIT 1").fetchone()
        except pw.ProgrammingError:  # the first process has not made the tables yet
            return None

    try:
        sync = a.start()  # syncd sync music --file music.csv
        wait_until(lambda: (r := run_row()) and r[2] > 0 and r, timeout=60,
                         message=a.log_tail)
        sync.send_signal(signal.SIGSTOP)  # alive, holding its claim, making no progress
        run_id, _, _, holder = run_row() or ()
        assert holder == f"{socket.gethostname()}:{sync.pid}"

        daemon = b.start("run")
        wait_until(lambda: "syncd started" in b.log.read_text(errors="replace")
                   if b.log.exists() else False, timeout=60, message=b.log_tail)
        assert run_row()[3] == holder, "the second daemon took the run over"
        assert "run left to its holder" in b.log.read_text()

        sync.send_signal(signal.SIGCONT)
        assert sync.wait(timeout=120) == 0, a.log_tail()
        final = run_row()
        assert final[0] == run_id and final[1] == "completed"
        assert final[2] == ROWS, f"{final[2]} processed for a {ROWS}-row file"
        count = db.execute_sql("SELECT COUNT(*) FROM content_index").fetchone()[0]
        assert count == ROWS
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, b.log_tail()
    finally:
        for ws in spaces:
            for proc in ws.procs:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                    proc.wait()
        db.close()


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
def test_a_store_opens_beside_a_transaction_writing_its_tables(
        database_url: str, tmp_path: Path) -> None:
    """What made the test above hang at times: a daemon starting while a frozen process
    held a transaction open. Its schema check must not wait on the tables' locks."""
    Store.open(database_url, tmp_path / "a").close()  # the tables exist
    holder = Store.open(database_url, tmp_path / "b")
    opened = threading.Event()

    def open_store() -> None:
        Store.open(database_url, tmp_path / "c").close()
        opened.set()

    try:
        with holder.db.atomic():
            holder.db.execute_sql("LOCK TABLE sync_runs, sync_errors, ingested_files "
                                  "IN ROW EXCLUSIVE MODE")
            threading.Thread(target=open_store, daemon=True).start()
            assert opened.wait(30), "opening the store waited on a writer's transaction"
    finally:
        holder.close()
