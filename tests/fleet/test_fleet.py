"""Three real daemons on one PostgreSQL database (SPEC §11): every run executed once.

The daemons are ``syncd run`` processes with hosts ``d0``, ``d1``, ``d2``; runs are
triggered over their APIs, daemons are killed and frozen with real signals, and the
outcome is read from the shared database.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

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
    metrics = daemons[1].api_text("/metrics")
    assert 'host="d1"' in metrics
