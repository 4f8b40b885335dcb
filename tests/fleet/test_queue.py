"""The fleet's queue on the real PostgreSQL server: claims, affinity, ticks, orphans."""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime
from pathlib import Path

import pytest

from syncd.config.fleet import FleetConfig
from syncd.errors import ConfigError
from syncd.fleet import Affinity
from syncd.store import Store
from syncd.store.claims import Claims
from syncd.store.fleet import FleetStore, check_fleet_store
from syncd.store.models import SyncRun
from tests.conftest import BACKENDS

postgres = pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)


def on(store: Store, holder: str) -> FleetStore:
    return FleetStore(Store(store.db, Claims(holder, 30)))


def queued(fleet: FleetStore, identifier: str, job: str = "j") -> int:
    run_id = fleet.enqueue(job=job, trigger="api", source_type="csv", identifier=identifier,
                           spec=None, device=None, resume=True)
    assert run_id is not None
    return run_id


@postgres
def test_two_claimers_at_once_get_different_runs(store: Store) -> None:
    a, b = on(store, "a:1"), on(store, "b:1")
    first, second = queued(a, "/s/1"), queued(a, "/s/2")
    assert SyncRun.get_by_id(first).claimed_by is None  # queued: nobody holds it
    # a holds the row lock of the oldest run in an open transaction; b skips it
    got: dict[str, int | None] = {}
    holding, done = threading.Event(), threading.Event()

    def claim_and_hold() -> None:
        with a.store.db.atomic():
            row = (SyncRun.select(SyncRun.id).where(SyncRun.id == first)
                   .for_update(skip_locked=True).first())
            got["a"] = row.id if row else None
            holding.set()
            done.wait(10)
        a.store.db.close()

    thread = threading.Thread(target=claim_and_hold)
    thread.start()
    holding.wait(10)
    claimed = b.claim_next(["j"])
    done.set()
    thread.join()
    assert got["a"] == first
    assert claimed is not None and claimed.id == second and claimed.claimed_by == "b:1"
    assert b.claim_next(["j"]) is not None  # the first, now free
    assert b.claim_next(["j"]) is None


@postgres
def test_affinity_and_unknown_jobs_are_left_to_others(store: Store) -> None:
    a, b = on(store, "a:1"), on(store, "b:1")
    local = a.store.create_run(job="j", trigger="watch", source_type="csv",
                               source_identifier="/inbox/x.csv", affinity="a")
    a.give_back(local)  # as after a's shutdown: claimable, but only by a
    other_job = queued(a, "/s/1", job="only-on-a")
    assert b.claim_next(["j"]) is None
    assert b.claim_next(["j", "only-on-a"]).id == other_job
    assert a.claim_next(["j"]).id == local


@postgres
def test_a_tick_is_taken_once(store: Store) -> None:
    a, b = on(store, "a:1"), on(store, "b:1")
    tick = datetime(2026, 1, 1, 0, 0, 2)
    first = a.enqueue(job="t", trigger="schedule", source_type="csv", identifier="/s/t",
                      spec=None, device=None, resume=True, tick=tick)
    again = b.enqueue(job="t", trigger="schedule", source_type="csv", identifier="/s/t",
                      spec=None, device=None, resume=True, tick=tick)
    assert first is not None and again is None
    assert SyncRun.select().where(SyncRun.job == "t").count() == 1


@postgres
def test_runs_of_a_dead_process_of_this_host_are_freed_at_once(store: Store) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = on(store, f"h:{dead.pid}")
    run_id = gone.store.create_run(job="j", trigger="cli", source_type="csv",
                                   source_identifier="/s/1")
    here = on(store, "h:1")
    assert here.claim_next(["j"]) is None  # its lease still runs
    assert here.free_orphans() == [run_id]
    assert here.claim_next(["j"]).id == run_id


@postgres
def test_heartbeats_list_the_live_peers(store: Store) -> None:
    a, b = on(store, "a:1"), on(store, "b:1")
    a.beat("1", datetime(2026, 1, 1))
    b.beat("1", datetime(2026, 1, 1))
    assert [p.host for p in a.peers(60)] == ["a", "b"]
    b.leave()
    assert [p.host for p in a.peers(60)] == ["a"]


def test_a_fleet_needs_postgresql(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fleet\.enabled"):
        check_fleet_store(store, tmp_path / "syncd.toml", FleetConfig(enabled=True))


def test_affinity_keeps_local_files_on_their_host(tmp_path: Path) -> None:
    shared = tmp_path / "share"
    shared.mkdir()
    rule = Affinity("h1", [shared])
    assert rule("api", str(shared / "a.csv")) is None
    assert rule("api", str(tmp_path / "local.csv")) == "h1"
    assert rule("watch", str(shared / "a.csv")) == "h1"  # an inbox is this host's
    assert rule("usb", None) == "h1"
    assert rule("api", "https://example.org/items") is None
    assert rule("schedule", None) is None
