"""The ledger endpoints: an export job's id map, the conflict queue, ``check``, metrics.

The app is built as the daemon builds it (``tests.api_fixtures.build``) with the test
adapters as plugins; the id map is filled by real export runs against ``MemoryRemote``
(``tests.ledger_data``). Every answer is checked against the envelope, and none may
be a 500. The id map and conflict tests run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.api import make_app
from syncd.engine import memory
from syncd.engine.check import check_job
from syncd.store import conflicts
from syncd.testing import MemoryRemote
from tests import leaky, restish
from tests.api_fixtures import Harness, answer, build, csv_job, write_lines
from tests.conftest import BACKENDS
from tests.ledger_data import EXPECTED, JOB, UNREACHABLE, export_job, fill, records, run

TOKEN = "tok-API-LEAK-51d2e0"


@pytest.fixture
def remote() -> Iterator[MemoryRemote]:
    with MemoryRemote() as r:
        yield r


class Api:
    def __init__(self, client: Any, harness: Harness) -> None:
        self.client, self.h = client, harness
        self.statuses: list[int] = []

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        self.statuses.append(response.status)
        return await answer(response, status)


@pytest.fixture
async def api(aiohttp_client: Any, tmp_path: Path, remote: MemoryRemote, database_url: str,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setenv("LEAKY_TOKEN", TOKEN)
    state = tmp_path / "state"
    music = write_lines(tmp_path / "music.csv", ["id,title,artist", "1,One,Ann"])
    jobs = {JOB: export_job(records(range(1)), remote.url), "music": csv_job(music, "music"),
            "gone": export_job(records(range(1)), UNREACHABLE),
            "leaky": {"source": {"type": "csv", "path": str(music)},
                      "target": {"type": "leaky", "token": {"env": "LEAKY_TOKEN"}},
                      "mapping": {"id": "id"}}}
    harness = build(state, jobs, database=database_url, plugins=(memory, restish, leaky))
    made = Api(await aiohttp_client(make_app(harness.context)), harness)
    yield made
    await harness.close()
    harness.store.close()
    assert 500 not in made.statuses


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_the_id_map_as_a_ledger_with_pages_and_filters(api, tmp_path, remote):
    await fill(api.h.store, tmp_path, remote)
    page = await api.call("GET", f"/v1/jobs/{JOB}/idmap", 200)
    assert page["job"] == JOB and page["nextBefore"] is None
    assert page["counts"] == {"pending": 1, "synced": 5, "failed": 2, "deferred": 0,
                              "deleted": 0}
    found = {e["localKey"]: (e["state"], e["transient"]) for e in page["entries"]}
    assert found == EXPECTED
    refused = next(e for e in page["entries"] if e["localKey"] == "6")
    assert refused["needsPerson"] is True and refused["errorRetryable"] is False
    assert "400" in refused["lastError"] and refused["attempts"] == 1
    assert [e["id"] for e in page["entries"]] == sorted(
        (e["id"] for e in page["entries"]), reverse=True)

    first = await api.call("GET", f"/v1/jobs/{JOB}/idmap?limit=5", 200)
    rest = await api.call("GET", f"/v1/jobs/{JOB}/idmap?before={first['nextBefore']}", 200)
    assert len(first["entries"]) == 5 and len(rest["entries"]) == 3
    failed = await api.call("GET", f"/v1/jobs/{JOB}/idmap?state=failed", 200)
    assert {e["localKey"] for e in failed["entries"]} == {"2", "6"}

    for query, field in (("state=lost", "state"), ("limit=0", "limit"),
                         ("limit=x", "limit"), ("before=-1", "before")):
        error = await api.call("GET", f"/v1/jobs/{JOB}/idmap?{query}", 400)
        assert field in error["message"]
    assert (await api.call("GET", "/v1/jobs/nope/idmap", 404))["code"] == "not_found"
    empty = await api.call("GET", "/v1/jobs/music/idmap", 200)  # not an export job
    assert empty["entries"] == [] and empty["counts"]["synced"] == 0


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_the_review_queue_and_resolving_over_the_api(api, tmp_path, remote):
    await run(api.h.store, tmp_path, records(range(2)), remote.url)
    assert (await api.call("GET", "/v1/conflicts", 200)) == {"conflicts": [],
                                                             "nextBefore": None}
    remote_id = next(i for i, item in remote.items.items() if item["key"] == "1")
    remote.items[remote_id]["name"] = "theirs"
    local = records(range(2), i1="ours")
    conflict = conflicts.record(JOB, "1", remote_id, local[1], remote.items[remote_id])

    [shown] = (await api.call("GET", "/v1/conflicts?status=open", 200))["conflicts"]
    assert (shown["id"], shown["job"], shown["localKey"], shown["status"]) == (
        conflict, JOB, "1", "open")
    assert shown["localRecord"] == {"id": "1", "name": "ours"}
    assert shown["remoteRecord"]["name"] == "theirs" and shown["resolution"] is None
    ledger = await api.call("GET", f"/v1/jobs/{JOB}/idmap", 200)
    entry = next(e for e in ledger["entries"] if e["localKey"] == "1")
    assert (entry["conflictId"], entry["needsPerson"]) == (conflict, True)

    path = f"/v1/conflicts/{conflict}/resolve"
    for body, code in (({}, "missing_field"), ({"keep": "both"}, "bad_field"),
                       ({"keep": None}, "bad_field"), ({"keep": "local", "x": 1}, "bad_field")):
        assert (await api.call("POST", path, 400, json=body))["code"] == code
    assert (await api.call("POST", path, 400, data="keep"))["code"] == "bad_json"
    assert (await api.call("POST", "/v1/conflicts/abc/resolve", 400,
                           json={"keep": "local"}))["code"] == "bad_field"
    assert (await api.call("POST", f"/v1/conflicts/{conflict + 50}/resolve", 404,
                           json={"keep": "local"}))["code"] == "not_found"
    done = await api.call("POST", path, 200, json={"keep": "remote"})
    assert (done["status"], done["resolution"], done["idmapState"]) == (
        "resolved", "remote", "synced")
    assert done["resolvedAt"] and "sends nothing" in done["nextRun"]
    again = await api.call("POST", path, 409, json={"keep": "local"})
    assert again["code"] == "already_resolved"
    assert (await api.call("GET", "/v1/conflicts?status=open", 200))["conflicts"] == []
    assert (await api.call("GET", "/v1/conflicts?status=x", 400))["code"] == "bad_field"

    sent = len(remote.requests)
    after = await run(api.h.store, tmp_path, local, remote.url)
    assert after.items_unchanged == 2 and remote.requests[sent:] == []  # the remote's stays


async def test_check_over_the_api_answers_for_both_sides_without_secrets(api, tmp_path):
    music = await api.call("POST", "/v1/jobs/music/check", 200)
    assert music["ok"] is True and music["job"] == "music"
    assert (music["source"]["adapter"], music["source"]["ok"]) == ("csv", True)
    assert "can be created" in music["target"]["message"]
    assert not api.h.store.db.table_exists("music")

    out = await api.call("POST", f"/v1/jobs/{JOB}/check", 200, json={})
    assert out["ok"] is True and out["target"]["adapter"] == "restish"

    leaked = await api.call("POST", "/v1/jobs/leaky/check", 200)
    assert (leaked["ok"], leaked["source"]["ok"], leaked["target"]["ok"]) == (False, True, False)
    assert leaked["target"]["errorType"] == "auth"
    assert "the token ***" in leaked["target"]["message"]
    assert TOKEN not in json.dumps(leaked)

    (tmp_path / "music.csv").unlink()
    gone = await api.call("POST", "/v1/jobs/music/check", 200)
    assert gone["ok"] is False and gone["source"]["ok"] is False
    assert (await api.call("POST", "/v1/jobs/nope/check", 404))["code"] == "not_found"
    assert (await api.call("POST", "/v1/jobs/music/check", 400, json={"x": 1}))["code"] == (
        "bad_field")


async def test_a_remote_that_is_gone_or_hangs_fails_its_check_in_time(api, remote):
    gone = await api.call("POST", "/v1/jobs/gone/check", 200)
    assert (gone["ok"], gone["source"]["ok"], gone["target"]["errorType"]) == (
        False, True, "network")
    assert "Connect" in gone["target"]["message"]
    remote.hang_next(1)
    began = asyncio.get_running_loop().time()
    report = await check_job(api.h.engine.plans[JOB], api.h.store, api.h.state_dir,
                             timeout=0.3)
    assert asyncio.get_running_loop().time() - began < 5
    assert (report.ok, report.target.message) == (False, "no answer within 0.3 s")
    assert report.source.ok


async def test_metrics_count_id_map_states_and_open_conflicts(api, tmp_path, remote):
    await fill(api.h.store, tmp_path, remote)
    conflicts.record(JOB, "3", None, {"id": "3"}, {"id": "r3"})
    response = await api.client.get("/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(await response.text())
               for s in family.samples}

    def idmap(state: str) -> float:
        return samples[("syncd_idmap_records", (("job", JOB), ("state", state)))]

    assert (idmap("synced"), idmap("failed"), idmap("pending"), idmap("deleted")) == (
        5, 2, 1, 0)
    assert samples[("syncd_conflicts_open", (("job", JOB),))] == 1
