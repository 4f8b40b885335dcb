"""Three real daemons on one PostgreSQL database (SPEC §11): every run executed once.

The daemons are ``syncd run`` processes with hosts ``d0``, ``d1``, ``d2``; runs are
triggered over their APIs, daemons are killed and frozen with real signals, and the
outcome is read from the shared database.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter

import pytest

from tests.crashkit import gone
from tests.fleet.cluster import Cluster, job, write_csv
from tests.poll import wait_until

pytestmark = pytest.mark.postgres

ROWS = 300
RUNS = 30


def unfinished(cluster: Cluster) -> int:
    return cluster.sql("SELECT COUNT(*) FROM sync_runs "
                       "WHERE status IN ('pending', 'in_progress')")[0][0]


def starts(cluster: Cluster) -> Counter[int]:
    """How many times each run was started or resumed, over every daemon's log."""
    seen: Counter[int] = Counter()
    for d in cluster.daemons:
        for r in d.records():
            if r.get("event") in ("starting queued run", "resuming run"):
                seen[r["run_id"]] += 1
    return seen


def test_api_triggered_runs_spread_over_the_fleet_each_run_once(cluster: Cluster) -> None:
    cluster.jobs = job("music", batch_rows=50)
    daemons = cluster.start(3)
    files = []
    for k in range(RUNS):
        path = cluster.shared / f"part{k:02d}.csv"
        write_csv(path, k * 1000, ROWS)
        files.append(path)
    ids = []
    for k, path in enumerate(files):
        status, answer = daemons[k % 3].api("POST", "/v1/sync/trigger",
                                            {"job": "music", "sourceIdentifier": str(path)})
        assert status == 202, answer
        ids.append(answer["data"]["syncRunId"])
    assert len(set(ids)) == RUNS
    wait_until(lambda: unfinished(cluster) == 0, 60, message=cluster.tails)

    runs = cluster.sql("SELECT id, status, items_processed, items_inserted, items_updated, "
                       "items_unchanged, claimed_by, error_message FROM sync_runs ORDER BY id")
    assert [r[0] for r in runs] == sorted(ids)
    for run_id, status, processed, inserted, updated, unchanged, _, _ in runs:
        assert (status, processed, inserted, updated, unchanged) == (
            "completed", ROWS, ROWS, 0, 0), f"run {run_id}: {runs}\n{cluster.tails()}"
    assert cluster.sql("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index") == [
        (RUNS * ROWS, RUNS * ROWS)]
    executed = starts(cluster)
    assert set(executed) == set(ids) and set(executed.values()) == {1}, executed
    hosts = Counter(r[6].rpartition(":")[0] for r in runs)
    assert len(hosts) >= 2, f"one daemon ran everything: {hosts}"

    # every daemon shows the whole fleet's runs, with the holder of each, and its peers
    status, answer = daemons[2].api("GET", "/v1/sync/runs?limit=100")
    assert status == 200
    listed = answer["data"]["runs"] if isinstance(answer["data"], dict) else answer["data"]
    assert {r["syncRunId"] for r in listed} == set(ids)
    assert all(r["claimedBy"].rpartition(":")[0] in {"d0", "d1", "d2"} for r in listed)
    status, answer = daemons[0].api("GET", "/v1/health")
    assert {p["host"] for p in answer["data"]["fleet"]["peers"]} == {"d0", "d1", "d2"}
    status, answer = daemons[1].api("GET", "/v1/sync/stats")
    by_host = answer["data"]["byHost"]
    assert {h: v["completed"] for h, v in by_host.items()} == dict(hosts)
    metrics = daemons[1].api_text("/metrics")
    assert 'syncd_runs{host="d1",status="completed"} 30.0' in metrics
    assert 'host="d1"' in metrics


@pytest.mark.slow
def test_a_schedule_fires_once_per_tick_for_the_fleet(cluster: Cluster) -> None:
    path = cluster.shared / "tick.csv"
    write_csv(path, 0, 20)
    cluster.jobs = job("tick", every="2s", path=path)
    cluster.start(3)

    def ticks() -> list[tuple]:
        return cluster.sql("SELECT fire_time, sync_run_id, host FROM sync_schedule_ticks "
                           "WHERE job = 'tick' ORDER BY fire_time")

    # 5 ticks take 10 s; the deadline leaves room for three daemons starting on 2 busy cores
    wait_until(lambda: len(ticks()) >= 5, 45, message=cluster.tails)
    cluster.stop()
    taken = ticks()
    times = [t[0] for t in taken]
    assert len(times) == len(set(times))
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    assert steps == {2.0}, f"ticks missed or doubled: {times}"
    runs = cluster.sql("SELECT id, status FROM sync_runs WHERE trigger = 'schedule' "
                       "ORDER BY id")
    assert sorted(t[1] for t in taken) == [r[0] for r in runs], (taken, runs)
    assert all(status in ("completed", "pending") for _, status in runs), runs
    # every daemon fired every tick; only one of them created its run
    fired = Counter(r["event"] for d in cluster.daemons for r in d.records()
                    if r.get("job") == "tick" and str(r.get("event")).startswith("schedule"))
    assert fired["schedule fired"] == len(taken), fired
    assert fired["schedule fired elsewhere"] >= len(taken), fired


def held_run(cluster: Cluster, run_id: int) -> tuple[str, int] | None:
    """(holder, items processed) once the run has committed a batch."""
    rows = cluster.sql("SELECT claimed_by, items_processed FROM sync_runs WHERE id = %s",
                       (run_id,))
    if rows and rows[0][0] and rows[0][1] > 0:
        return rows[0][0], rows[0][1]
    return None


def assert_exact(cluster: Cluster, run_id: int, rows: int) -> None:
    """Every record exactly once, and the counters of one clean execution."""
    got = cluster.sql("SELECT status, items_processed, items_inserted, items_updated, "
                      "items_unchanged, items_failed FROM sync_runs WHERE id = %s", (run_id,))
    assert got == [("completed", rows, rows, 0, 0, 0)], f"{got}\n{cluster.tails()}"
    assert cluster.sql("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index") == [
        (rows, rows)]
    assert cluster.sql("SELECT COUNT(*) FROM sync_runs") == [(1,)]


BIG = 20_000


def start_big_run(cluster: Cluster) -> tuple[int, str]:
    path = cluster.shared / "big.csv"
    write_csv(path, 0, BIG)
    cluster.jobs = job("music", batch_rows=250)
    daemons = cluster.start(3)
    status, answer = daemons[0].api("POST", "/v1/sync/trigger",
                                    {"job": "music", "sourceIdentifier": str(path)})
    assert status == 202, answer
    run_id = answer["data"]["syncRunId"]
    holder, _ = wait_until(lambda: held_run(cluster, run_id), 30, interval=0.01,
                           message=cluster.tails)
    return run_id, holder


def wait_for_new_holder(cluster: Cluster, run_id: int, old: str,
                        within: float | None = None) -> str:
    """The run's next holder, once a daemon other than ``old`` claimed it."""
    def new() -> str | None:
        rows = cluster.sql("SELECT claimed_by FROM sync_runs WHERE id = %s", (run_id,))
        return rows[0][0] if rows[0][0] != old else None

    def state() -> str:
        row = cluster.sql("SELECT status, claimed_by, lease_until, items_processed, "
                          "now() AT TIME ZONE 'UTC' FROM sync_runs WHERE id = %s",
                          (run_id,))
        return f"run (status, holder, lease until, processed, now): {row}\n{cluster.tails()}"

    return wait_until(new, within or 4 * cluster.lease_seconds, interval=0.02,
                      message=state)


@pytest.mark.slow
def test_a_killed_daemons_run_is_taken_over_within_two_leases(cluster: Cluster) -> None:
    run_id, holder = start_big_run(cluster)
    victim = cluster.by_holder(holder)
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.proc.wait(timeout=10)
    new = wait_for_new_holder(cluster, run_id, holder)
    took = time.monotonic() - killed
    assert new.rpartition(":")[0] != victim.host
    assert took <= 2 * cluster.lease_seconds, f"takeover took {took:.2f}s"
    print(f"takeover after kill -9: {took:.2f}s (lease {cluster.lease_seconds}s)")
    wait_until(lambda: unfinished(cluster) == 0, 60, message=cluster.tails)
    assert_exact(cluster, run_id, BIG)


def test_a_killed_daemons_worker_goes_with_it_and_its_run_is_taken_over(
        cluster: Cluster) -> None:
    """Runs in worker processes: the child writes under its daemon's claim, dies with
    it, and the daemon that takes the run over finishes it with every record once."""
    cluster.isolate_runs = "true"
    run_id, holder = start_big_run(cluster)
    victim = cluster.by_holder(holder)
    assert victim.proc is not None
    worker = wait_until(lambda: next((r["pid"] for r in victim.records()
                                      if r.get("event") == "run in a worker process"), None),
                        30, message=cluster.tails)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    wait_until(lambda: gone(worker), 30,
               message=lambda: f"worker {worker} outlived its daemon\n{cluster.tails()}")
    # how soon is the test above's; here a slow machine may take longer
    wait_for_new_holder(cluster, run_id, holder, within=30)
    wait_until(lambda: unfinished(cluster) == 0, 60, message=cluster.tails)
    assert_exact(cluster, run_id, BIG)


@pytest.mark.slow
def test_a_frozen_daemon_revived_after_its_lease_writes_nothing(cluster: Cluster) -> None:
    run_id, holder = start_big_run(cluster)
    frozen = cluster.by_holder(holder)
    assert frozen.proc is not None
    frozen.proc.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    new = wait_for_new_holder(cluster, run_id, holder)
    took = time.monotonic() - stopped
    assert took <= 2 * cluster.lease_seconds, f"takeover took {took:.2f}s"
    frozen.proc.send_signal(signal.SIGCONT)
    # the revived daemon learns it lost the run and stops writing it
    wait_until(lambda: any(r.get("run_id") == run_id and "taken over" in r.get("event", "")
                           for r in frozen.records()), 30, message=cluster.tails)
    wait_until(lambda: unfinished(cluster) == 0, 60, message=cluster.tails)
    assert_exact(cluster, run_id, BIG)
    assert cluster.sql("SELECT claimed_by FROM sync_runs WHERE id = %s", (run_id,)) == [
        (new,)]
    assert frozen.up()  # it lost a run, not its life
