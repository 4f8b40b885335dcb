"""The control API (SPEC §5) over a real store, engine and the built-in adapters.

Every endpoint and error path answers in the envelope with its status; no answer in
this module may be a 500 (checked for every client the ``make_api`` fixture makes).
Runs are awaited by polling with deadlines, never by sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from syncd import __version__
from syncd.api import make_app
from syncd.api.adhoc import plan_from_spec
from syncd.engine import Engine, Request
from syncd.engine.locks import RunLock
from tests.api_fixtures import (
    MUSIC_GOOD,
    MUSIC_LINES,
    MUSIC_RECORDS,
    EventStream,
    Harness,
    answer,
    build,
    check_envelope,
    csv_job,
    write_lines,
    write_rows,
)
from tests.poll import wait_for

FINAL = ("completed", "failed", "cancelled")
BIG_ROWS = 300_000
CLEAN_LINES = ["id,Title,Artist Name", "a1,First,Ann", "a2,Second,Bob", "a3,Third,Cy"]


@dataclass
class Api:
    """A test client on the app, with envelope-checking shortcuts."""

    client: TestClient
    h: Harness
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    async def get(self, path: str, status: int = 200, **kwargs: Any) -> Any:
        return await answer(await self.client.get(path, **kwargs), status)

    async def post(self, path: str, status: int = 202, **kwargs: Any) -> Any:
        return await answer(await self.client.post(path, **kwargs), status)

    async def trigger(self, status: int = 202, **body: Any) -> Any:
        return await self.post("/v1/sync/trigger", status, json=body)

    async def run(self, run_id: int) -> dict[str, Any]:
        return await self.get(f"/v1/sync/{run_id}")

    async def finished(self, run_id: int, timeout: float = 20.0) -> dict[str, Any]:
        """The run once it is completed, failed or cancelled."""

        async def final() -> dict[str, Any] | None:
            run = await self.run(run_id)
            return run if run["status"] in FINAL else None

        return await wait_for(final, timeout, interval=0.02)

    async def events(self, query: str = "") -> EventStream:
        response = await self.client.get(f"/v1/events{query}")
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        return await EventStream(response).opened()


def standard_jobs(state_dir: Path) -> dict[str, Any]:
    music = state_dir / "music.csv"
    return {
        "music": csv_job(music, "music", schedule="0 3 * * *"),
        "often": csv_job(music, "often", every="15m"),
        # its mapping names a column the file lacks: every run fails (validation)
        "broken": csv_job(music, "broken", mapping={"external_id": "id", "genre": "genre"}),
        "held": csv_job(music, "held", source_type="held_csv"),
        "big": csv_job(state_dir / "big.csv", "big", batch_rows=10_000),
    }


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    write_lines(state / "music.csv", MUSIC_LINES)
    write_lines(state / "clean.csv", CLEAN_LINES)
    return state


@pytest.fixture
async def make_api(aiohttp_client: Any, state_dir: Path, request: pytest.FixtureRequest
                   ) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """Builds apps as the daemon wires them; afterwards, checks no answer was a 500.

    An ``xfail`` test documents a known server bug and asserts its own statuses.
    """
    made: list[Api] = []

    async def make(token: str | None = None, allowed_paths: tuple[Path, ...] = ()) -> Api:
        harness = build(state_dir, standard_jobs(state_dir), token=token,
                        allowed_paths=allowed_paths)
        seen: list[tuple[str, str, int]] = []

        async def record(session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams
                         ) -> None:
            seen.append((params.method, params.url.path_qs, params.response.status))

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(record)
        client = await aiohttp_client(make_app(harness.context), trace_configs=[trace])
        api = Api(client, harness, seen)
        made.append(api)
        return api

    yield make
    for api in made:
        await api.h.close()
    errors = [s for api in made for s in api.seen if s[2] >= 500 and s[2] != 503]
    assert not errors or request.node.get_closest_marker("xfail"), f"server errors: {errors}"


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[Api]]) -> Api:
    return await make_api()


async def operations(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document, path parameters filled in."""
    doc = await api.client.get("/v1/openapi.json", headers=auth_header(api))
    assert doc.status == 200
    spec = await doc.json()
    found = []
    for template, item in spec["paths"].items():
        path = (template.replace("{run_id}", "1").replace("{name}", "music")
                .replace("{conflict_id}", "1"))
        found += [(method.upper(), path) for method in item]
    assert len(found) == 19
    return found


def auth_header(api: Api) -> dict[str, str]:
    token = api.h.context.token
    return {"Authorization": f"Bearer {token}"} if token else {}


async def request(api: Api, method: str, path: str, headers: dict[str, str] | None = None
                  ) -> tuple[int, dict[str, str], Any]:
    """Status, headers and parsed body (None for a stream or text) of one request."""
    async with api.client.request(method, path, headers=headers or {}) as response:
        body = None
        if response.content_type == "application/json":
            body = await response.json()
        return response.status, dict(response.headers), body


def add_run(api: Api, job: str = "music", status: str = "pending",
            source: str | None = None) -> int:
    """A run row written straight to the store, as another process would leave it."""
    store = api.h.store
    run_id = store.create_run(job=job, trigger="cli", source_type="csv",
                              source_identifier=source or str(api.h.state_dir / "music.csv"))
    if status == "in_progress":
        store.start(run_id, None)
    elif status != "pending":
        store.finish(run_id, status, "failed on purpose" if status == "failed" else None)
    return run_id


# -- health, stats, runs ---------------------------------------------------------------


async def test_health_says_version_uptime_and_database(api: Api) -> None:
    data = await api.get("/v1/health")
    assert data["status"] == "ok" and data["database"] is True
    assert data["version"] == __version__
    assert data["uptimeSeconds"] >= 0 and data["shuttingDown"] is False


async def test_stats_count_runs_by_status_and_by_job(api: Api) -> None:
    empty = await api.get("/v1/sync/stats")
    assert empty == dict(total=0, pending=0, in_progress=0, completed=0, failed=0, cancelled=0)

    done = (await api.trigger(job="music"))["syncRunId"]
    failed = (await api.trigger(job="broken"))["syncRunId"]
    assert (await api.finished(done))["status"] == "completed"
    assert (await api.finished(failed))["status"] == "failed"
    add_run(api, "music", "pending", source="/elsewhere/a.csv")
    add_run(api, "often", "cancelled")

    stats = await api.get("/v1/sync/stats")
    assert stats == dict(total=4, pending=1, in_progress=0, completed=1, failed=1, cancelled=1)
    assert (await api.get("/v1/sync/stats?by=", 400))["code"] == "bad_field"  # as the schema says

    by_job = await api.get("/v1/sync/stats?by=job")
    assert {k: v for k, v in by_job.items() if k != "byJob"} == stats
    assert by_job["byJob"] == {
        "music": dict(total=2, pending=1, in_progress=0, completed=1, failed=0, cancelled=0),
        "broken": dict(total=1, pending=0, in_progress=0, completed=0, failed=1, cancelled=0),
        "often": dict(total=1, pending=0, in_progress=0, completed=0, failed=0, cancelled=1),
    }
    error = await api.get("/v1/sync/stats?by=status", 400)
    assert error["code"] == "bad_field" and "'by'" in error["message"]


async def test_runs_are_newest_first_filtered_and_paged_with_next_before(api: Api) -> None:
    statuses = ["completed", "failed", "cancelled", "pending", "completed"]
    ids = [add_run(api, "music" if i % 3 else "broken", statuses[i % 5], source=f"/x/{i}.csv")
           for i in range(11)]
    page = await api.get("/v1/sync/runs")
    assert [r["syncRunId"] for r in page["runs"]] == ids[::-1]
    assert page["nextBefore"] is None
    first = page["runs"][0]
    assert first["job"] == "music" and first["sourceIdentifier"] == "/x/10.csv"
    assert first["createdAt"].endswith("Z") and first["dryRun"] is False

    walked, before, pages = [], None, 0
    while True:
        query = f"?limit=4&before={before}" if before else "?limit=4"
        page = await api.get(f"/v1/sync/runs{query}")
        assert len(page["runs"]) <= 4
        walked += [r["syncRunId"] for r in page["runs"]]
        pages += 1
        before = page["nextBefore"]
        if before is None:
            break
        assert before == walked[-1]
    assert walked == ids[::-1] and pages == 3

    exact = await api.get("/v1/sync/runs?limit=11")  # no page after a full last page
    assert len(exact["runs"]) == 11 and exact["nextBefore"] is None

    failed = await api.get("/v1/sync/runs?status=failed")
    assert {r["status"] for r in failed["runs"]} == {"failed"}
    assert len(failed["runs"]) == sum(statuses[i % 5] == "failed" for i in range(11))
    broken = await api.get("/v1/sync/runs?job=broken&status=completed")
    assert [r["syncRunId"] for r in broken["runs"]] == [
        ids[i] for i in range(10, -1, -1) if i % 3 == 0 and statuses[i % 5] == "completed"]
    assert (await api.get("/v1/sync/runs?job=nope"))["runs"] == []


@pytest.mark.parametrize("query,name", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("limit=1.5", "limit"),
    ("before=0", "before"), ("before=x", "before"), ("status=done", "status"),
])
async def test_runs_reject_bad_parameters_by_name(api: Api, query: str, name: str) -> None:
    error = await api.get(f"/v1/sync/runs?{query}", 400)
    assert error["code"] == "bad_field" and f"'{name}'" in error["message"]


async def test_run_detail_has_counters_checkpoint_and_errors_with_line_numbers(api: Api) -> None:
    started = await api.trigger(job="music")
    assert started["job"] == "music"
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed" and run["trigger"] == "api"
    assert run["sourceType"] == "csv"
    assert run["sourceIdentifier"] == str(api.h.state_dir / "music.csv")
    assert (run["itemsProcessed"], run["itemsInserted"], run["itemsFailed"]) == (
        MUSIC_RECORDS, MUSIC_GOOD, 2)
    assert run["checkpoint"]["line"] == len(MUSIC_LINES)
    for stamp in ("createdAt", "startedAt", "completedAt"):
        assert datetime.fromisoformat(run[stamp].removesuffix("Z")) <= datetime.now(UTC).replace(
            tzinfo=None)
    assert run["errorsTotal"] == 2
    assert run["errors"] == [
        {"type": "validation", "code": "field_count", "message": "expected 3 fields, got 2",
         "item": "line 5", "retryable": False},
        {"type": "validation", "code": "missing_key", "message": "no value for key external_id",
         "item": "line 9", "retryable": False},
    ]
    assert api.h.rows("SELECT COUNT(*) FROM music") == [(MUSIC_GOOD,)]


async def test_run_detail_names_the_artifacts_saved_for_the_run(api: Api) -> None:
    run_id = add_run(api, "music", "completed")
    assert "artifacts" not in await api.run(run_id)
    folder = api.h.state_dir / "artifacts" / str(run_id)
    folder.mkdir(parents=True)
    for name in ("2027-03-01-create-step3.png", "2027-03-01-create-step3.html"):
        (folder / name).write_bytes(b"x")
    assert (await api.run(run_id))["artifacts"] == [
        str(folder / "2027-03-01-create-step3.html"), str(folder / "2027-03-01-create-step3.png")]


@pytest.mark.parametrize("run_id,status", [
    ("999", 404), ("abc", 400), ("0", 400), ("-3", 400), ("1e3", 400), (str(2**63), 400)])
async def test_run_detail_of_a_missing_or_malformed_id(api: Api, run_id: str, status: int
                                                       ) -> None:
    error = await api.get(f"/v1/sync/{run_id}", status)
    assert error["code"] == ("not_found" if status == 404 else "bad_field")


# -- triggering ------------------------------------------------------------------------


async def test_trigger_starts_a_run_that_completes(api: Api) -> None:
    dry = await api.trigger(job="music", dryRun=True)
    run = await api.finished(dry["syncRunId"])
    assert run["status"] == "completed" and run["dryRun"] is True
    assert run["itemsInserted"] == MUSIC_GOOD
    if api.h.store.db.table_exists("music"):  # counted, not written
        assert api.h.rows("SELECT COUNT(*) FROM music") == [(0,)]

    real = await api.trigger(job="music", dryRun=False)
    assert real["syncRunId"] != dry["syncRunId"]
    run = await api.finished(real["syncRunId"])
    assert run["status"] == "completed" and run["dryRun"] is False
    assert api.h.rows("SELECT external_id, title FROM music WHERE external_id = '7'") == [
        ("7", "Song 7")]


BAD_TRIGGERS = [  # (body, status, code, what the message names)
    (b"{not json", 400, "bad_json", "JSON"),
    (b"\xff\xfe", 400, "bad_json", "JSON"),
    ([1, 2], 400, "bad_json", "object"),
    ("music", 400, "bad_json", "object"),
    (b"null", 400, "bad_json", "object"),
    (b"", 400, "missing_field", "'job'"),
    ({}, 400, "missing_field", "'job'"),
    ({"dryRun": True}, 400, "missing_field", "'sourceType'"),
    ({"job": 5}, 400, "bad_field", "'job'"),
    ({"job": ["music"]}, 400, "bad_field", "'job'"),
    ({"job": "music", "dryRun": "yes"}, 400, "bad_field", "'dryRun'"),
    ({"job": "music", "dryRun": 1}, 400, "bad_field", "'dryRun'"),
    ({"job": "music", "sourceIdentifier": 5}, 400, "bad_field", "'sourceIdentifier'"),
    ({"job": "music", "sourceType": "csv"}, 400, "bad_field", "not both"),
    ({"job": "music", "colour": "red"}, 400, "bad_field", "'colour'"),
    ({"job": "music", "options": {}}, 400, "bad_field", "'options'"),
    ({"job": "nope"}, 404, "not_found", "'nope'"),
    ({"job": "music", "sourceIdentifier": "relative.csv"}, 400, "bad_field", "absolute"),
    ({"job": "music", "sourceIdentifier": " "}, 400, "bad_field", "sourceIdentifier"),
    ({"job": "music", "sourceIdentifier": "/a\x00b"}, 400, "bad_field", "sourceIdentifier"),
    ({"job": "music", "sourceIdentifier": "/etc/passwd"}, 400, "forbidden_path", "allowed_paths"),
    ({"job": "music", "sourceIdentifier": "{state}/../x.csv"}, 400, "not_found_path", "x.csv"),
    ({"job": "music", "sourceIdentifier": "{state}/nope.csv"}, 400, "not_found_path",
     "does not exist"),
    ({"job": "music", "sourceIdentifier": "{state}"}, 400, "bad_field", "not a regular file"),
    ({"job": "music", "sourceIdentifier": "/" + "x" * 5000}, 400, "not_found_path", "xxx"),
]


@pytest.mark.parametrize("body,status,code,names", BAD_TRIGGERS,
                         ids=[f"{i}-{b!r:.30}" for i, (b, *_) in enumerate(BAD_TRIGGERS)])
async def test_trigger_rejects_bad_input_naming_the_field(api: Api, body: Any, status: int,
                                                          code: str, names: str) -> None:
    if isinstance(body, dict) and "{state}" in str(body.get("sourceIdentifier")):
        body = {**body, "sourceIdentifier": body["sourceIdentifier"].format(
            state=api.h.state_dir)}
    if isinstance(body, bytes):
        response = await api.client.post("/v1/sync/trigger", data=body,
                                          headers={"Content-Type": "application/json"})
    else:
        response = await api.client.post("/v1/sync/trigger", json=body)
    error = await answer(response, status)
    assert error["code"] == code
    assert names in error["message"]
    assert await api.get("/v1/sync/runs") == {"runs": [], "nextBefore": None}


async def test_a_body_over_64_kib_is_413(api: Api) -> None:
    body = b'{"job": "music", "pad": "' + b"x" * (64 * 1024) + b'"}'
    error = await api.post("/v1/sync/trigger", 413, data=body,
                           headers={"Content-Type": "application/json"})
    assert error["code"] == "too_large" and "64 KiB" in error["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    error = await api.post("/v1/sync/trigger", 413, data=chunks(),
                           headers={"Content-Type": "application/json"})
    assert error["code"] == "too_large"
    for path in ("/v1/sync/resume", "/v1/sync/1/retry", "/v1/sync/1/cancel"):
        await api.post(path, 413, data=body)


async def test_symlinks_are_resolved_before_the_folder_check(api: Api, tmp_path: Path) -> None:
    outside = write_lines(tmp_path / "outside" / "secret.csv", CLEAN_LINES)
    (api.h.state_dir / "sneaky.csv").symlink_to(outside)
    error = await api.trigger(400, job="music",
                              sourceIdentifier=str(api.h.state_dir / "sneaky.csv"))
    assert error["code"] == "forbidden_path"
    (api.h.state_dir / "escape").symlink_to(outside.parent, target_is_directory=True)
    error = await api.trigger(400, job="music",
                              sourceIdentifier=str(api.h.state_dir / "escape" / "secret.csv"))
    assert error["code"] == "forbidden_path"

    (api.h.state_dir / "alias.csv").symlink_to(api.h.state_dir / "music.csv")
    started = await api.trigger(job="music", sourceIdentifier=str(api.h.state_dir / "alias.csv"))
    run = await api.finished(started["syncRunId"])
    assert run["sourceIdentifier"] == str(api.h.state_dir / "music.csv")


async def test_a_path_in_allowed_paths_may_be_read(make_api: Any, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_lines(extra / "more.csv", MUSIC_LINES)
    write_lines(tmp_path / "other" / "more.csv", MUSIC_LINES)
    api = await make_api(allowed_paths=(extra,))
    started = await api.trigger(job="music", sourceIdentifier=str(extra / "more.csv"))
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed" and run["sourceIdentifier"] == str(extra / "more.csv")
    error = await api.trigger(400, job="music",
                              sourceIdentifier=str(tmp_path / "other" / "more.csv"))
    assert error["code"] == "forbidden_path" and str(extra) in error["message"]


async def test_a_second_trigger_while_the_job_runs_on_that_file_is_409(api: Api) -> None:
    first = (await api.trigger(job="held"))["syncRunId"]
    await wait_for(api.h.hold.entered.is_set)
    error = await api.trigger(409, job="held")
    assert error["code"] == "already_running" and "held" in error["message"]
    error = await api.trigger(409, job="held", sourceIdentifier=str(api.h.state_dir / "music.csv"))
    assert error["code"] == "already_running"
    copy = write_lines(api.h.state_dir / "copy.csv", MUSIC_LINES)
    other = await api.trigger(job="held", sourceIdentifier=str(copy))  # another file: no conflict
    api.h.hold.release()
    assert (await api.finished(first))["status"] == "completed"
    assert (await api.finished(other["syncRunId"]))["status"] == "completed"
    again = await api.trigger(job="held")  # the lock went with the run
    assert (await api.finished(again["syncRunId"]))["status"] == "completed"


# -- ad-hoc jobs -----------------------------------------------------------------------


async def test_adhoc_trigger_defaults_the_key_to_external_id_and_says_so(api: Api) -> None:
    clean = str(api.h.state_dir / "clean.csv")
    started = await api.trigger(sourceType="csv", sourceIdentifier=clean,
                                options={"targetTable": "things", "contentType": "x"})
    assert started["job"] == "adhoc-things" and started["table"] == "things"
    assert started["key"] == ["external_id"] and started["keyDefaulted"] is True
    assert "external_id" in started["message"] and "options.key" in started["message"]
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed" and run["itemsInserted"] == 3
    assert (run["job"], run["sourceType"], run["sourceIdentifier"]) == ("adhoc-things", "csv",
                                                                        clean)
    assert api.h.rows("SELECT external_id, title, artist_name, content_type FROM things "
                      "ORDER BY external_id") == [
        ("a1", "First", "Ann", "x"), ("a2", "Second", "Bob", "x"), ("a3", "Third", "Cy", "x")]


async def test_adhoc_trigger_with_a_column_mapping_and_a_key(api: Api) -> None:
    started = await api.trigger(
        sourceType="csv", sourceIdentifier=str(api.h.state_dir / "clean.csv"),
        options={"targetTable": "mapped", "columnMapping": {"id": "code", "Title": "name"},
                 "key": ["code"], "delimiter": ",", "hasHeader": True})
    assert started["key"] == ["code"] and started["keyDefaulted"] is False
    assert "message" not in started
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed"
    assert api.h.rows("SELECT code, name FROM mapped ORDER BY code") == [
        ("a1", "First"), ("a2", "Second"), ("a3", "Third")]


BAD_ADHOC = [  # (body without sourceIdentifier/sourceType unless given, code, message part)
    ({"options": {"targetTable": "t", "colour": "red"}}, "bad_field", "options.colour"),
    ({"options": {"targetTable": "1table"}}, "bad_field", "options.targetTable"),
    ({"options": {"hasHeader": "maybe"}}, "bad_field", "options.hasHeader"),
    ({"options": {"key": []}}, "bad_field", "options.key"),
    ({"options": {"columnMapping": {"id": 5}}}, "bad_field", "options.columnMapping"),
    ({"options": {"columnMapping": {"id": "id"}}}, "bad_field", "columnMapping"),
    ({"options": {"columnMapping": {"id": "code"}, "key": ["other"]}}, "bad_field", "other"),
    ({"options": {"hasHeader": False}}, "bad_field", "columnMapping"),
    ({"options": {"dataPath": "$.items"}}, "bad_field", "REST"),
    ({"options": ["targetTable"]}, "bad_field", "'options'"),
    ({"sourceType": "ftp"}, "bad_field", "csv"),
    ({"sourceType": 3}, "bad_field", "'sourceType'"),
    ({"sourceIdentifier": None}, "bad_field", "'sourceIdentifier'"),
]


@pytest.mark.parametrize("body,code,names", BAD_ADHOC,
                         ids=[f"{i}-{b!r:.40}" for i, (b, *_) in enumerate(BAD_ADHOC)])
async def test_adhoc_trigger_rejects_bad_options_naming_them(api: Api, body: dict[str, Any],
                                                             code: str, names: str) -> None:
    full = {"sourceType": "csv", "sourceIdentifier": str(api.h.state_dir / "clean.csv"), **body}
    error = await api.post("/v1/sync/trigger", 400, json=full)
    assert error["code"] == code and names in error["message"]


async def test_adhoc_options_are_typed_as_strictly_as_the_top_level_fields(api: Api) -> None:
    response = await api.client.post("/v1/sync/trigger", json={
        "sourceType": "csv", "sourceIdentifier": str(api.h.state_dir / "clean.csv"),
        "options": {"hasHeader": "no", "columnMapping": {"id": "code"}}})
    if response.status == 202:  # let the run end inside the test
        await api.finished((await response.json())["data"]["syncRunId"])
    error = await answer(response, 400)
    assert "options.hasHeader" in error["message"]


async def test_adhoc_trigger_with_a_bad_delimiter_is_400(api: Api) -> None:
    error = await api.post("/v1/sync/trigger", 400, json={
        "sourceType": "csv", "sourceIdentifier": str(api.h.state_dir / "clean.csv"),
        "options": {"delimiter": "ab"}})
    assert "delimiter" in error["message"]


async def test_adhoc_trigger_on_an_unreadable_header_is_400(api: Api) -> None:
    bad = api.h.state_dir / "huge-header.csv"
    # a header field over csv's field size limit (10 MiB once a csv run has set it)
    bad.write_text("id," + "h" * (11 * 1024 * 1024) + "\n1,2\n")
    error = await api.post("/v1/sync/trigger", 400, json={
        "sourceType": "csv", "sourceIdentifier": str(bad)})
    assert error["code"] == "bad_source"


async def test_adhoc_trigger_may_not_write_into_the_stores_own_tables(api: Api) -> None:
    before = [c.name for c in api.h.store.db.get_columns("sync_runs")]
    response = await api.client.post("/v1/sync/trigger", json={
        "sourceType": "csv", "sourceIdentifier": str(api.h.state_dir / "clean.csv"),
        "options": {"targetTable": "sync_runs"}})
    if response.status == 202:
        await api.finished((await response.json())["data"]["syncRunId"])
    assert [c.name for c in api.h.store.db.get_columns("sync_runs")] == before
    await answer(response, 400)


# -- resume, retry, cancel -------------------------------------------------------------


async def test_resume_continues_interrupted_runs_from_their_checkpoint(api: Api) -> None:
    assert await api.post("/v1/sync/resume") == {"resumed": []}
    h = api.h
    paused = Engine(h.store, h.setup.plans, h.state_dir, pm=h.setup.pm)
    paused.adhoc_planner = h.engine.adhoc_planner
    paused.closing = True  # as if SIGTERM came during the first batch
    run_id, outcome = await paused.run(Request("music", "cli"))
    assert outcome.status == "pending"
    spec = {"source": {"type": "csv", "has_header": True, "delimiter": "auto"},
            "target": {"type": "sql", "table": "resumed", "key": ["external_id"]},
            "mapping": {"external_id": "id", "title": "Title"}, "constants": {}}
    adhoc_id, outcome = await paused.run(Request(
        "adhoc-resumed", "api", str(h.state_dir / "clean.csv"),
        plan=plan_from_spec(spec, h.setup.registry), spec=spec))
    assert outcome.status == "pending"
    before = await api.run(run_id)
    assert before["status"] == "pending" and before["checkpoint"]["line"] == 5
    assert 0 < before["itemsProcessed"] < MUSIC_RECORDS

    resumed = await api.post("/v1/sync/resume", json={})
    assert sorted(resumed["resumed"]) == [run_id, adhoc_id]
    run = await api.finished(run_id)
    assert run["status"] == "completed" and run["trigger"] == "cli"
    assert (run["itemsProcessed"], run["itemsInserted"]) == (MUSIC_RECORDS, MUSIC_GOOD)
    assert (await api.finished(adhoc_id))["status"] == "completed"
    assert h.rows("SELECT COUNT(*) FROM resumed") == [(3,)]
    assert await api.post("/v1/sync/resume", data=b"") == {"resumed": []}
    error = await api.post("/v1/sync/resume", 400, data=b"[")
    assert error["code"] == "bad_json"


async def test_retry_starts_a_new_attempt_of_a_failed_run(api: Api) -> None:
    failed_id = (await api.trigger(job="broken"))["syncRunId"]
    failed = await api.finished(failed_id)
    assert failed["status"] == "failed" and "genre" in failed["errorMessage"]
    assert [(e["type"], e["retryable"]) for e in failed["errors"]] == [("validation", False)]

    retried = await api.post(f"/v1/sync/{failed_id}/retry")
    assert retried["parentRun"] == failed_id and retried["syncRunId"] > failed_id
    attempt = await api.finished(retried["syncRunId"])
    assert (attempt["parentRun"], attempt["attempt"], attempt["trigger"]) == (failed_id, 2,
                                                                              "retry")
    assert attempt["status"] == "failed"  # the mapping is still wrong

    done = (await api.trigger(job="music"))["syncRunId"]
    await api.finished(done)
    error = await api.post(f"/v1/sync/{done}/retry", 409)
    assert error["code"] == "not_failed" and "completed" in error["message"]
    assert (await api.post("/v1/sync/999/retry", 404))["code"] == "not_found"
    assert (await api.post("/v1/sync/abc/retry", 400))["code"] == "bad_field"
    gone = add_run(api, "removed-job", "failed")
    error = await api.post(f"/v1/sync/{gone}/retry", 409)
    assert error["code"] == "cannot_retry" and "removed-job" in error["message"]
    assert (await api.post(f"/v1/sync/{failed_id}/retry", 400, data=b"{"))["code"] == "bad_json"


async def test_cancel_a_running_run_stops_it_after_its_batch(api: Api) -> None:
    run_id = (await api.trigger(job="held"))["syncRunId"]
    await wait_for(api.h.hold.entered.is_set)
    assert await api.post(f"/v1/sync/{run_id}/cancel") == {"syncRunId": run_id,
                                                            "status": "cancelling"}
    api.h.hold.release()
    run = await api.finished(run_id)
    assert run["status"] == "cancelled" and run["errorMessage"] == "cancelled on request"
    assert 0 < run["itemsProcessed"] < MUSIC_RECORDS
    error = await api.post(f"/v1/sync/{run_id}/cancel", 409)
    assert error["code"] == "not_cancellable" and "cancelled" in error["message"]


async def test_cancel_a_run_nothing_runs_here_and_the_conflicts(api: Api) -> None:
    pending = add_run(api, "music", "pending")
    assert await api.post(f"/v1/sync/{pending}/cancel", json={}) == {"syncRunId": pending,
                                                                      "status": "cancelled"}
    run = await api.run(pending)
    assert run["status"] == "cancelled" and run["completedAt"] is not None
    interrupted = add_run(api, "music", "in_progress")  # its process died: the lock is free
    assert (await api.post(f"/v1/sync/{interrupted}/cancel"))["status"] == "cancelled"

    done = (await api.trigger(job="music"))["syncRunId"]
    await api.finished(done)
    error = await api.post(f"/v1/sync/{done}/cancel", 409)
    assert error["code"] == "not_cancellable" and "completed" in error["message"]
    assert (await api.post("/v1/sync/424242/cancel", 404))["code"] == "not_found"
    assert (await api.post("/v1/sync/x/cancel", 400))["code"] == "bad_field"


async def test_cancel_refuses_a_run_another_process_is_running(api: Api) -> None:
    source = str(api.h.state_dir / "music.csv")
    run_id = add_run(api, "music", "in_progress", source=source)
    lock = RunLock(api.h.state_dir, "music", source)
    assert lock.acquire()  # held as `syncd sync` would hold it
    try:
        error = await api.post(f"/v1/sync/{run_id}/cancel", 409)
        assert error["code"] == "running_elsewhere" and "another process" in error["message"]
        assert (await api.run(run_id))["status"] == "in_progress"
    finally:
        lock.release()


# -- jobs, plugins ---------------------------------------------------------------------


async def test_jobs_show_triggers_next_run_and_last_run(api: Api) -> None:
    jobs = {j["name"]: j for j in (await api.get("/v1/jobs"))["jobs"]}
    assert list(jobs) == ["music", "often", "broken", "held", "big"]
    music = jobs["music"]
    assert music["source"] == {"type": "csv", "path": str(api.h.state_dir / "music.csv")}
    assert music["target"] == {"type": "sql", "table": "music", "key": ["external_id"]}
    assert music["schedule"] == "0 3 * * *" and music["every"] is None
    assert "schedule '0 3 * * *'" in music["triggers"] and "api" in music["triggers"]
    assert (music["dependsOn"], music["onMissing"], music["lastRun"]) == ([], "keep", None)
    nxt = datetime.fromisoformat(music["nextRunAt"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now < nxt <= now + timedelta(days=1) and (nxt.hour, nxt.minute) == (3, 0)
    often = jobs["often"]
    assert often["every"] == 900.0 and often["schedule"] is None
    soon = datetime.fromisoformat(often["nextRunAt"].replace("Z", "+00:00"))
    assert now < soon <= datetime.now(UTC) + timedelta(minutes=15)
    assert jobs["held"]["nextRunAt"] is None

    run_id = (await api.trigger(job="music"))["syncRunId"]
    await api.finished(run_id)
    detail = await api.get("/v1/jobs/music")
    assert detail["lastRun"]["syncRunId"] == run_id
    assert detail["lastRun"]["status"] == "completed"
    assert {k: v for k, v in detail.items() if k not in ("lastRun", "nextRunAt")} == {
        k: v for k, v in music.items() if k not in ("lastRun", "nextRunAt")}
    error = await api.get("/v1/jobs/nope", 404)
    assert error["code"] == "not_found" and "'nope'" in error["message"]


async def test_plugins_list_the_registered_adapters(api: Api) -> None:
    data = await api.get("/v1/plugins")
    sources = {s["name"]: s for s in data["sources"]}
    targets = {t["name"]: t for t in data["targets"]}
    assert {"csv", "held_csv"} <= set(sources) and "sql" in targets
    assert sources["csv"]["module"] == "syncd_builtin.csv_source"
    assert sources["csv"]["plugin"] == "csv" and sources["csv"]["distribution"].startswith("syncd")
    assert sources["csv"]["description"]
    assert targets["sql"]["module"] == "syncd_builtin.sql_target"
    assert data["failed"] == {}


# -- events, metrics -------------------------------------------------------------------


async def test_events_stream_a_run_from_start_to_finish(api: Api) -> None:
    stream = await api.events()
    run_id = (await api.trigger(job="music"))["syncRunId"]
    events = await stream.until(lambda k, d: k == "run_finished" and d["runId"] == run_id)
    mine = [(k, d) for k, d in events if d["runId"] == run_id]
    kinds = [k for k, _ in mine]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert mine[0][1]["job"] == "music"
    progress = [d for k, d in mine if k == "progress"]
    assert len(progress) == 3  # 12 records in batches of 4
    assert [p["processed"] for p in progress] == [4, 8, 12]
    assert all(isinstance(p["rate"], int | float) and p["rate"] >= 0 for p in progress)
    assert progress[-1]["position"] == progress[-1]["size"]
    errors = [d for k, d in mine if k == "error"]
    assert [(e["count"], e["message"].split(":")[0]) for e in errors] == [(1, "line 5"),
                                                                         (1, "line 9")]
    finished = mine[-1][1]
    assert finished["status"] == "completed" and finished["error"] is None
    assert finished["duration"] >= 0

    error = await api.get("/v1/events?run=abc", 400)
    assert "'run'" in error["message"]


async def test_events_filtered_by_run_show_only_that_run(api: Api) -> None:
    everything = await api.events()
    held = (await api.trigger(job="held"))["syncRunId"]
    await wait_for(api.h.hold.entered.is_set)
    only = await api.events(f"?run={held}")
    other = (await api.trigger(job="music"))["syncRunId"]
    await everything.until(lambda k, d: k == "run_finished" and d["runId"] == other)
    api.h.hold.release()
    events = await only.until(lambda k, d: k == "run_finished")
    assert {d["runId"] for _, d in events} == {held}
    assert [k for k, _ in events if k != "error"] == ["progress"] * 3 + ["run_finished"]


async def test_metrics_in_prometheus_text(api: Api) -> None:
    done = (await api.trigger(job="music"))["syncRunId"]
    failed = (await api.trigger(job="broken"))["syncRunId"]
    await api.finished(done)
    await api.finished(failed)

    async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = await api.client.get("/metrics")
        assert response.status == 200 and response.content_type == "text/plain"
        samples = {}
        for family in text_string_to_metric_families(await response.text()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    samples = await wait_for(  # items are counted once the finished run is read back
        lambda: _with(scrape(), ("syncd_items_total", (("job", "music"),
                                                       ("outcome", "inserted")))))
    assert samples[("syncd_items_total", (("job", "music"), ("outcome", "inserted")))] == 10
    assert samples[("syncd_items_total", (("job", "music"), ("outcome", "failed")))] == 2
    assert samples[("syncd_runs", (("status", "completed"),))] == 1
    assert samples[("syncd_runs", (("status", "failed"),))] == 1
    assert samples[("syncd_runs", (("status", "pending"),))] == 0
    assert samples[("syncd_runs_finished_total", (("job", "broken"), ("status", "failed")))] == 1
    buckets = {k: v for k, v in samples.items() if k[0] == "syncd_run_duration_seconds_bucket"}
    assert buckets[("syncd_run_duration_seconds_bucket", (("job", "music"), ("le", "+Inf")))] == 1
    assert samples[("syncd_run_duration_seconds_count", (("job", "music"),))] == 1
    last = samples[("syncd_last_success_timestamp_seconds", (("job", "music"),))]
    assert abs(last - time.time()) < 60  # a UTC epoch, whatever the local time zone
    assert ("syncd_last_success_timestamp_seconds", (("job", "broken"),)) not in samples
    assert samples[("syncd_queue_depth", ())] == 0


async def _with(scraping: Awaitable[dict[Any, float]], key: Any) -> dict[Any, float] | None:
    samples = await scraping
    return samples if key in samples else None


# -- shutting down, routing, auth ------------------------------------------------------


async def test_while_shutting_down_everything_but_health_is_503(api: Api) -> None:
    ops = await operations(api)
    api.h.context.closing = True
    for method, path in ops:
        status, headers, body = await request(api, method, path)
        if path == "/v1/health":
            assert status == 200 and body["data"]["shuttingDown"] is True
            continue
        assert status == 503, (method, path, status)
        check_envelope(body, success=False)
        assert body["error"]["code"] == "shutting_down" and headers["Retry-After"] == "5"
    assert await api.get("/v1/nothing-here", 503)


async def test_unknown_paths_and_wrong_methods_answer_in_the_envelope(api: Api) -> None:
    for path in ("/v1", "/v1/nothing", "/v1/sync/1/explode", "/metrics/x", "/static/x"):
        error = await api.get(path, 404)
        assert error["code"] == "not_found" and path in error["message"]
    for method, path in [("DELETE", "/v1/health"), ("PUT", "/v1/sync/trigger"),
                         ("POST", "/v1/jobs"), ("PATCH", "/v1/sync/1"),
                         ("GET", "/v1/sync/1/cancel"), ("DELETE", "/metrics")]:
        status, headers, body = await request(api, method, path)
        assert status == 405, (method, path)
        check_envelope(body, success=False)
        assert body["error"]["code"] == "method_not_allowed" and headers["Allow"]


async def test_get_on_the_post_only_sync_endpoints_is_405(api: Api) -> None:
    for path in ("/v1/sync/trigger", "/v1/sync/resume"):
        status, headers, _ = await request(api, "GET", path)
        assert (status, headers.get("Allow")) == (405, "POST")


async def test_every_operation_needs_the_token_but_health(make_api: Any) -> None:
    api = await make_api(token="s3cret")
    ops = await operations(api)
    wrong = [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic s3cret"},
             {"Authorization": "Bearer"}, {"Authorization": "s3cret"},
             {"Authorization": "Bearer s3cret2"}]
    for method, path in ops:
        if path.startswith("/v1/hooks/"):
            continue  # signed by the job's secret instead (tests/api/test_webhook.py)
        for headers in wrong:
            status, got, body = await request(api, method, path, headers)
            if path == "/v1/health":
                assert status == 200
                continue
            assert status == 401, (method, path, headers, status)
            check_envelope(body, success=False)
            assert body["error"]["code"] == "unauthorized"
            assert got["WWW-Authenticate"] == 'Bearer realm="syncd"'
        for scheme in ("Bearer", "bearer"):
            status, _, _ = await request(api, method, path, {"Authorization": f"{scheme} s3cret"})
            assert status not in (401, 500), (method, path, status)
    status, got, _ = await request(api, "GET", "/v1/nothing")
    assert status == 401 and "WWW-Authenticate" in got  # no probing for endpoints either


# -- a long sync -----------------------------------------------------------------------


async def test_a_long_sync_streams_progress_keeps_answering_and_can_be_cancelled(
        api: Api) -> None:
    big = write_rows(api.h.state_dir / "big.csv", BIG_ROWS)
    stream = await api.events()
    run_id = (await api.trigger(job="big"))["syncRunId"]
    reading = asyncio.create_task(stream.until(
        lambda k, d: k == "run_finished" and d["runId"] == run_id, timeout=45))
    latencies = []
    while not reading.done():
        began = time.monotonic()
        await api.get("/v1/sync/stats")
        latencies.append(time.monotonic() - began)
        await asyncio.sleep(0.05)
    events = await reading
    progress = [d for k, d in events if k == "progress" and d["runId"] == run_id]
    assert len(progress) >= 2 and progress[-1]["processed"] == BIG_ROWS
    assert len(latencies) >= 3, latencies
    assert max(latencies) < 1.0, latencies
    run = await api.finished(run_id)
    assert (run["status"], run["itemsInserted"]) == ("completed", BIG_ROWS)

    big2 = api.h.state_dir / "big2.csv"  # a run of its own, and read whole: every line
    big2.write_text(big.read_text(encoding="utf-8").replace(",Song ", ",Tune "),  # changed
                    encoding="utf-8")
    second = (await api.trigger(job="big", sourceIdentifier=str(api.h.state_dir / "big2.csv"))
              )["syncRunId"]
    await stream.until(lambda k, d: k == "progress" and d["runId"] == second, timeout=20)
    assert (await api.post(f"/v1/sync/{second}/cancel"))["status"] == "cancelling"
    run = await api.finished(second, timeout=30)
    assert run["status"] == "cancelled"
    assert 0 < run["itemsProcessed"] < BIG_ROWS
