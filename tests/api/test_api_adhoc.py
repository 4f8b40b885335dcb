"""Ad-hoc triggers as seed 003 documents them, and what they may do to existing tables.

Seed 003's Examples 1 and 3 are sent verbatim (only ``sourceIdentifier`` points at
the test's copy of the example CSV instead of ``/data/…``) to the real app on a real
store, and every record of their CSVs must arrive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.api import make_app
from syncd.config.schema import JobConfig
from syncd.engine import Request
from syncd.engine.plan import resolve_job
from tests.api import test_api as base
from tests.api.test_api import Api
from tests.api_fixtures import answer, build, csv_job, write_lines
from tests.conftest import BACKENDS

# the fixtures of test_api: a real app on a real store, no 500 allowed
state_dir, make_api, api = base.state_dir, base.make_api, base.api

# seed 003, "Example 1: Sync Music Catalog from CSV"
MUSIC_CATALOG = ["song_name,artist_name,music_genre,album",
                 "Despacito,Luis Fonsi,Reggaeton,Vida",
                 "Shape of You,Ed Sheeran,Pop,Divide",
                 "Bohemian Rhapsody,Queen,Rock,A Night at the Opera"]
EXAMPLE_1 = """{
    "sourceType": "csv",
    "sourceIdentifier": "/data/music_catalog.csv",
    "options": {
      "targetTable": "content_index",
      "contentType": "music",
      "hasHeader": true,
      "delimiter": ",",
      "columnMapping": {
        "title": "song_name",
        "artist": "artist_name",
        "genre": "music_genre"
      }
    }
  }"""

# seed 003, "Example 3: Sync Catalog Pricing from CSV"
CATALOG_PRICING = ["category_id,capacity,capacity_gb,price,content_count,content_unit,"
                   "is_active,is_popular",
                   "music,8GB,8,54900,1400,canciones,true,false",
                   "music,32GB,32,84900,5000,canciones,true,true",
                   "music,64GB,64,119900,10000,canciones,true,false"]
EXAMPLE_3 = """{
    "sourceType": "csv",
    "sourceIdentifier": "/data/catalog_pricing.csv",
    "options": {
      "targetTable": "catalog_items",
      "hasHeader": true
    }
  }"""


async def send_seed(api: Api, example: str, lines: list[str], name: str,
                    status: int = 202) -> Any:
    """POST the seed's body as written, its ``/data/`` path moved to the test's file."""
    path = write_lines(api.h.state_dir / name, lines)
    body = example.replace(f"/data/{name}", str(path))
    response = await api.client.post("/v1/sync/trigger", data=body,
                                     headers={"Content-Type": "application/json"})
    return await answer(response, status)


def indexes(api: Api, table: str) -> set[tuple[str, tuple[str, ...]]]:
    return {(i.name, tuple(i.columns)) for i in api.h.store.db.get_indexes(table)}


def columns(api: Api, table: str) -> list[str]:
    return [c.name for c in api.h.store.db.get_columns(table)]


async def test_seed_003_example_1_verbatim_stores_its_3_songs(api: Api) -> None:
    started = await send_seed(api, EXAMPLE_1, MUSIC_CATALOG, "music_catalog.csv")
    assert started["mappingDirection"] == "target: source"
    assert started["mapping"] == {"title": "song_name", "artist": "artist_name",
                                  "genre": "music_genre"}
    # content_index is keyed by external_id, which the mapping does not fill
    assert started["key"] == ["external_id"] and started["keyFrom"] == "whole record"
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed" and run["itemsInserted"] == 3, run
    assert api.h.rows("SELECT title, artist, genre, content_type FROM content_index "
                      "ORDER BY title") == [
        ("Bohemian Rhapsody", "Queen", "Rock", "music"),
        ("Despacito", "Luis Fonsi", "Reggaeton", "music"),
        ("Shape of You", "Ed Sheeran", "Pop", "music")]
    again = await send_seed(api, EXAMPLE_1, MUSIC_CATALOG, "music_catalog.csv")
    run = await api.finished(again["syncRunId"])
    assert (run["itemsInserted"], run["itemsUnchanged"]) == (0, 3)
    assert api.h.rows("SELECT COUNT(*) FROM content_index") == [(3,)]


async def test_seed_003_example_3_verbatim_stores_its_3_prices(api: Api) -> None:
    started = await send_seed(api, EXAMPLE_3, CATALOG_PRICING, "catalog_pricing.csv")
    # no key, no id column: the first column (music on every row) would merge them all
    assert started["key"] == ["record_key"] and started["keyFrom"] == "whole record"
    assert started["keyDefaulted"] is True and "all its mapped values" in started["message"]
    run = await api.finished(started["syncRunId"])
    assert run["status"] == "completed" and run["itemsInserted"] == 3, run
    assert api.h.rows("SELECT category_id, capacity, price FROM catalog_items "
                      "ORDER BY CAST(capacity_gb AS INTEGER)") == [
        ("music", "8GB", "54900"), ("music", "32GB", "84900"), ("music", "64GB", "119900")]
    # the table exists now; a second run finds its key there and changes nothing
    again = await send_seed(api, EXAMPLE_3, CATALOG_PRICING, "catalog_pricing.csv")
    assert again["keyFrom"] == "whole record" and again["key"] == ["record_key"]
    run = await api.finished(again["syncRunId"])
    assert (run["itemsInserted"], run["itemsUnchanged"]) == (0, 3)
    named = await api.trigger(sourceType="csv", sourceIdentifier=again_path(api),
                              options={"targetTable": "catalog_items", "key": ["record_key"]})
    assert named["keyFrom"] == "whole record" and named["keyDefaulted"] is False
    assert (await api.finished(named["syncRunId"]))["itemsUnchanged"] == 3


def again_path(api: Api) -> str:
    return str(api.h.state_dir / "catalog_pricing.csv")


async def test_a_mapping_in_the_other_direction_is_taken_when_the_header_proves_it(
        api: Api) -> None:
    started = await api.trigger(
        sourceType="csv", sourceIdentifier=str(api.h.state_dir / "clean.csv"),
        options={"targetTable": "flipped", "columnMapping": {"id": "code", "Title": "name"},
                 "key": ["code"]})
    assert started["mappingDirection"] == "source: target"
    assert started["mapping"] == {"code": "id", "name": "Title"}
    assert (await api.finished(started["syncRunId"]))["status"] == "completed"


async def test_a_mapping_naming_a_missing_column_is_400_naming_it(api: Api) -> None:
    path = write_lines(api.h.state_dir / "music_catalog.csv", MUSIC_CATALOG)
    error = await api.trigger(400, sourceType="csv", sourceIdentifier=str(path), options={
        "targetTable": "songs", "columnMapping": {"title": "song_nme", "artist": "artist_name"}})
    assert error["code"] == "bad_field"
    assert "'song_nme'" in error["message"] and "song_name" in error["message"]
    assert not api.h.store.db.table_exists("songs")


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_seed_003_examples_1_and_3_on_every_backend(aiohttp_client: Any, state_dir: Path,
                                                          database_url: str) -> None:
    """The same 3 and 3 rows on PostgreSQL and MariaDB, whose index listings differ."""
    harness = build(state_dir, {}, database=database_url)
    try:
        api = Api(await aiohttp_client(make_app(harness.context)), harness)
        for example, lines, name, table in (
                (EXAMPLE_1, MUSIC_CATALOG, "music_catalog.csv", "content_index"),
                (EXAMPLE_3, CATALOG_PRICING, "catalog_pricing.csv", "catalog_items")):
            for attempt in range(2):  # the second run finds the table and its key
                started = await send_seed(api, example, lines, name)
                run = await api.finished(started["syncRunId"])
                assert run["status"] == "completed", run
                assert run["itemsInserted"] == (3, 0)[attempt], run
            assert harness.rows(f"SELECT COUNT(*) FROM {table}") == [(3,)]
            assert {cols for _, cols in indexes(api, table) if cols != ("id",)} == {
                (started["key"][0],)}
    finally:
        await harness.close()
        harness.store.close()


# -- existing tables are not altered ---------------------------------------------------


async def test_an_adhoc_run_adds_no_index_or_column_to_a_configured_jobs_table(
        api: Api) -> None:
    done = await api.trigger(job="music")
    assert (await api.finished(done["syncRunId"]))["status"] == "completed"
    before_indexes, before_columns = indexes(api, "music"), columns(api, "music")
    clean = str(api.h.state_dir / "clean.csv")

    wrong_key = await api.trigger(400, sourceType="csv", sourceIdentifier=clean, options={
        "targetTable": "music", "columnMapping": {"title": "Title"}, "key": ["title"]})
    assert "options.key" in wrong_key["message"] and "[external_id]" in wrong_key["message"]
    new_column = await api.trigger(400, sourceType="csv", sourceIdentifier=clean, options={
        "targetTable": "music", "columnMapping": {"title": "Title", "singer": "Artist Name"}})
    assert "singer" in new_column["message"] and "'music'" in new_column["message"]

    # by the table's own key, into its own columns: allowed, and nothing is added
    fits = await api.trigger(sourceType="csv", sourceIdentifier=clean, options={
        "targetTable": "music", "columnMapping": {"external_id": "id", "title": "Title"}})
    assert fits["key"] == ["external_id"] and fits["keyFrom"] == "table"
    assert (await api.finished(fits["syncRunId"]))["status"] == "completed"
    assert indexes(api, "music") == before_indexes and columns(api, "music") == before_columns
    again = await api.trigger(job="music")
    assert (await api.finished(again["syncRunId"]))["status"] == "completed"


async def test_an_adhoc_run_into_content_index_keeps_a_configured_job_working(
        api: Api) -> None:
    """The issue's case: the ad-hoc key (title) became a UNIQUE index on content_index."""
    songs = write_lines(api.h.state_dir / "songs.csv",
                        ["title,artist", "Same Title,A", "Other,B"])
    started = await api.trigger(sourceType="csv", sourceIdentifier=str(songs), options={
        "columnMapping": {"title": "title", "artist": "artist"}})
    assert started["table"] == "content_index" and started["key"] == ["external_id"]
    assert (await api.finished(started["syncRunId"]))["status"] == "completed"
    assert {cols for _, cols in indexes(api, "content_index")} <= {("external_id",)}
    # two distinct records that share a title, as a configured job writes them
    twins = write_lines(api.h.state_dir / "twins.csv",
                        ["id,title,artist", "t1,Same Title,C", "t2,Same Title,D"])
    job = JobConfig.model_validate(csv_job(twins, "content_index"))
    plan = resolve_job("catalog", job, api.h.setup.registry, "test")
    _, outcome = await api.h.engine.run(Request("catalog", "cli", plan=plan))
    assert outcome.status == "completed", outcome.error
    assert api.h.rows("SELECT COUNT(*) FROM content_index WHERE title = 'Same Title'") == [(3,)]


async def test_a_table_syncd_did_not_make_is_refused(api: Api) -> None:
    api.h.store.db.execute_sql("CREATE TABLE mine (id INTEGER PRIMARY KEY, title TEXT)")
    error = await api.trigger(400, sourceType="csv",
                              sourceIdentifier=str(api.h.state_dir / "clean.csv"),
                              options={"targetTable": "mine",
                                       "columnMapping": {"title": "Title"}})
    assert "'mine'" in error["message"] and "never keyed" in error["message"]
    assert columns(api, "mine") == ["id", "title"] and not indexes(api, "mine")


# -- wrong requests, in the user's terms -------------------------------------------------


@pytest.mark.parametrize("source_type", ["ftp", "graphql"])
async def test_a_source_type_not_available_is_said_before_the_path(api: Api,
                                                                   source_type: str) -> None:
    error = await api.trigger(400, sourceType=source_type,
                              sourceIdentifier="https://api.example.com/music/catalog")
    assert error["message"].startswith(f"sourceType {source_type!r} is not available; ")
    assert "csv" in error["message"] and "rest" in error["message"]


async def test_a_key_naming_a_renamed_column_says_so_in_the_requests_terms(api: Api) -> None:
    error = await api.trigger(400, sourceType="csv",
                              sourceIdentifier=str(api.h.state_dir / "clean.csv"),
                              options={"targetTable": "keyed", "key": ["id"]})
    assert error["message"].startswith("options.key: 'id'")
    assert "stored as 'external_id'" in error["message"] and "jobs." not in error["message"]


@pytest.mark.parametrize("table,whose", [
    ("sqlite_master", "the database's"), ("SQLITE_sequence", "the database's"),
    ("pg_class", "the database's"), ("information_schema", "the database's"),
    ("sync_runs", "syncd's"), ("ingested_files", "syncd's")])
async def test_a_databases_own_tables_are_refused(api: Api, table: str, whose: str) -> None:
    error = await api.trigger(400, sourceType="csv",
                              sourceIdentifier=str(api.h.state_dir / "clean.csv"),
                              options={"targetTable": table})
    assert error["message"].startswith("field 'options.targetTable'"), error
    assert whose in error["message"]


async def test_two_columns_with_one_column_name_are_400(api: Api) -> None:
    path = write_lines(api.h.state_dir / "twice.csv", ["Title,title", "a,b"])
    error = await api.trigger(400, sourceType="csv", sourceIdentifier=str(path),
                              options={"targetTable": "twice"})
    assert "'Title' and 'title'" in error["message"]


async def test_allow_mass_missing_is_a_boolean_passed_to_the_run(api: Api) -> None:
    seen: list[Request] = []
    start = api.h.engine.start

    async def observe(request: Request, resume: bool = True) -> int:
        seen.append(request)
        return await start(request, resume)

    api.h.engine.start = observe  # type: ignore[method-assign]
    done = await api.trigger(job="music", allowMassMissing=True)
    await api.finished(done["syncRunId"])
    adhoc = await api.trigger(sourceType="csv", allowMassMissing=True,
                              sourceIdentifier=str(api.h.state_dir / "clean.csv"),
                              options={"targetTable": "masses"})
    await api.finished(adhoc["syncRunId"])
    assert [r.allow_mass_missing for r in seen] == [True, True]
    error = await api.trigger(400, job="music", allowMassMissing="yes")
    assert "'allowMassMissing'" in error["message"]


# -- hostile bodies ----------------------------------------------------------------------


async def test_a_deeply_nested_body_is_400_in_the_envelope(api: Api) -> None:
    body = "[" * 5000 + "]" * 5000 + " " * 20_000  # 30 KB, under the size limit
    response = await api.client.post("/v1/sync/trigger", data=body,
                                     headers={"Content-Type": "application/json"})
    assert (await answer(response, 400))["code"] == "bad_json"


@pytest.mark.parametrize("where", ["job", "sourceIdentifier", "options"])
async def test_a_lone_surrogate_is_400_in_the_envelope(api: Api, where: str) -> None:
    body = {"sourceType": "csv", "sourceIdentifier": str(api.h.state_dir / "clean.csv"),
            where: "\ud800" if where != "options" else {"targetTable": "\ud800"}}
    if where == "job":
        body = {"job": "\ud800"}
    raw = json.dumps(body)  # ASCII, with the surrogate as the escape \ud800
    response = await api.client.post("/v1/sync/trigger", data=raw,
                                     headers={"Content-Type": "application/json"})
    error = await answer(response, 400)
    assert error["code"] == "bad_json" and "surrogate" in error["message"]


@pytest.mark.parametrize("method,path,query", [
    ("GET", "/v1/events", "run="), ("GET", "/v1/events", "run=garbage"),
    ("GET", "/v1/sync/stats", "by="), ("GET", "/v1/sync/runs", "status="),
    ("GET", "/v1/sync/runs", "limit="),
])
async def test_query_values_the_schema_calls_invalid_are_400(api: Api, method: str, path: str,
                                                               query: str) -> None:
    response = await api.client.request(method, f"{path}?{query}")
    assert (await answer(response, 400))["code"] == "bad_field"


@pytest.mark.parametrize("path", ["/v1/sync/resume", "/v1/sync/1/retry", "/v1/sync/1/cancel"])
async def test_actions_without_input_refuse_unknown_fields(api: Api, path: str) -> None:
    error = await api.post(path, 400, json={"force": True})
    assert "'force'" in error["message"]


@pytest.mark.parametrize("path,allowed", [
    ("/v1/sync/trigger", "POST"), ("/v1/sync/resume", "POST"), ("/v1/sync/7", "GET, HEAD"),
    ("/v1/sync/7/retry", "POST"),
])
async def test_options_names_the_methods_of_that_resource_only(api: Api, path: str,
                                                                allowed: str) -> None:
    response = await api.client.options(path)
    assert response.status == 405 and response.headers["Allow"] == allowed
