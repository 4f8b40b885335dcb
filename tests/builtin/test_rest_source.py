"""The REST source against a fake music catalog (a real aiohttp server): every pagination
style, dotted paths, retries, incremental runs, on_missing, resuming, and loop guards."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from syncd.adapters import Batch, Checkpoint, RunContext
from syncd.config import validate
from syncd.engine import Engine, Request, resolve_jobs
from syncd.engine.reading import batches
from syncd.plugins import get_pluginmanager
from syncd.remote.http import HttpFactory
from syncd.store import Store, checkpoint_of
from syncd_builtin import adapters
from syncd_builtin.rest_source import RestSource
from tests.fakes.catalog import Catalog, make_records
from tests.poll import wait_for

ITEMS = "data.items"
PAGED = {"type": "page", "limit_param": "limit", "limit": 10}
STYLES = {
    "page": ("/catalog/page", ITEMS, PAGED),
    "offset": ("/catalog/offset", ITEMS, {"type": "offset", "limit_param": "limit",
                                          "limit": 10}),
    "cursor": ("/catalog/cursor", ITEMS, {"type": "cursor", "limit_param": "limit",
                                          "limit": 10, "cursor_path": "next_cursor"}),
    "link": ("/catalog/link", ITEMS, {"type": "link", "limit_param": "limit", "limit": 10}),
    "next_url": ("/catalog/next", ITEMS, {"type": "next_url", "next_path": "next",
                                          "limit_param": "limit", "limit": 10}),
    "none": ("/catalog/all", ITEMS, {"type": "none"}),
    "bare list": ("/catalog/list", "", PAGED),
}


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with Catalog(make_records(25)) as fake:
        yield fake


def context(tmp_path: Path, previous: Checkpoint | None = None) -> RunContext:
    return RunContext(run_id=1, job="t", log=structlog.get_logger("test"), state_dir=tmp_path,
                      http=HttpFactory(), previous_checkpoint=previous)


def source(catalog: Catalog, path: str = "/catalog/page", data_path: str = ITEMS,
           pagination: dict[str, Any] | None = None, **options: Any) -> RestSource:
    return RestSource(RestSource.Options(url=catalog.url, path=path, data_path=data_path,
                                         pagination=pagination or PAGED, **options))


def read(rest: RestSource, fields: Sequence[str], tmp_path: Path,
         checkpoint: Checkpoint | None = None, batch_rows: int = 1000,
         previous: Checkpoint | None = None) -> list[Batch]:
    rest.open(context(tmp_path, previous))
    return list(batches(rest, fields, checkpoint, batch_rows))


def rows(read: list[Batch]) -> list[tuple[Any, ...]]:
    return [row for batch in read for row in batch.rows]


# -- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(STYLES))
def test_every_pagination_style_reads_each_record_once(style: str, catalog: Catalog,
                                                       tmp_path: Path) -> None:
    path, data_path, pagination = STYLES[style]
    got = read(source(catalog, path, data_path, pagination), ["id", "name"], tmp_path)
    assert rows(got) == [(f"t{i}", f"Song {i}") for i in range(1, 26)]
    assert len(catalog.pages()) == (1 if style == "none" else 3)  # 10 + 10 + 5
    assert got[-1].checkpoint["done"] is True


def test_a_post_sends_its_body_with_the_page(catalog: Catalog, tmp_path: Path) -> None:
    got = read(source(catalog, "/catalog/search", method="post", body={"q": "all"}), ["id"],
               tmp_path)
    assert len(rows(got)) == 25
    assert [(m, q["page"], q["q"]) for m, _, q in catalog.pages()] == [
        ("POST", "1", "all"), ("POST", "2", "all"), ("POST", "3", "all")]


@pytest.mark.parametrize("style", ["page", "offset", "cursor"])
def test_pages_of_exactly_the_limit_end_on_the_empty_page(style: str, tmp_path: Path) -> None:
    with Catalog(make_records(20)) as fake:
        path, data_path, pagination = STYLES[style]
        got = read(source(fake, path, data_path, pagination), ["id"], tmp_path)
        assert len(rows(got)) == 20
        assert len(fake.pages()) == (2 if style == "cursor" else 3)


def test_the_limit_defaults_to_100_when_a_limit_param_is_given(catalog: Catalog,
                                                                tmp_path: Path) -> None:
    read(source(catalog, pagination={"type": "page", "limit_param": "limit"}), ["id"], tmp_path)
    assert [q["limit"] for _, _, q in catalog.pages()] == ["100"]


# -- fields --------------------------------------------------------------------------------


def test_dotted_paths_reach_into_objects_and_lists(catalog: Catalog, tmp_path: Path) -> None:
    got = read(source(catalog), ["id", "artist.name", "tags.0", "tags.5", "nothing.here",
                                 "artist"], tmp_path)
    first = rows(got)[0]
    assert first[:5] == ("t1", "Artist 1", "tag1", None, None)
    assert json.loads(first[5]) == {"country": "DE", "name": "Artist 1"}


def test_a_record_that_is_no_object_is_an_item_error(tmp_path: Path) -> None:
    with Catalog([*make_records(2), "oops", *make_records(1, 3)]) as fake:  # type: ignore[list-item]
        got = read(source(fake), ["id"], tmp_path)
    assert rows(got) == [("t1",), ("t2",), ("t3",)]
    [error] = [e for b in got for e in b.errors]
    assert (error.type, error.code, error.item) == ("parsing", "not_an_object",
                                                    "page 1 record 3")


def test_options_name_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="either remote"):
        RestSource.Options(path="/x")
    with pytest.raises(ValidationError, match="cursor_path"):
        RestSource.Options(url="http://x", pagination={"type": "cursor"})
    with pytest.raises(ValidationError, match="POST"):
        RestSource.Options(url="http://x", body={"a": 1})


# -- retries -------------------------------------------------------------------------------


def test_429_with_retry_after_and_503_are_retried(catalog: Catalog, tmp_path: Path) -> None:
    catalog.fail_next(1, 429, retry_after="0.6")
    began = time.monotonic()
    first = read(source(catalog), ["id"], tmp_path)
    assert time.monotonic() - began >= 0.6, "Retry-After was not waited for"
    catalog.reset()
    catalog.fail_next(2, 503)
    second = read(source(catalog), ["id"], tmp_path)
    assert len(rows(first)) == len(rows(second)) == 25
    assert [q.get("page") for _, _, q in catalog.pages()] == ["1", "1", "1", "2", "3"]


# -- through the engine, into SQLite -------------------------------------------------------


def engine_for(store: Store, tmp_path: Path, source_options: dict[str, Any],
               kind: str = "rest", **job: Any) -> Engine:
    jobs = {"music": {"source": {"type": kind, **source_options},
                      "target": {"type": "sql", "table": "content_index",
                                 "key": ["external_id"]},
                      "mapping": {"external_id": "id", "title": "name",
                                  "artist": "artist.name", "genre": "category"},
                      "constants": {"content_type": "music"}, **job}}
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False,
                                    plugins=(adapters.rest_source, adapters.sql))
    return Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")


def table(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.db.execute_sql(sql).fetchall()]


async def sync(engine: Engine) -> Any:
    run_id, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "completed", outcome.error
    return engine.store.get_run(run_id)


def paged(catalog: Catalog, **extra: Any) -> dict[str, Any]:
    return {"url": catalog.url, "path": "/catalog/page", "data_path": ITEMS,
            "pagination": {**PAGED, **extra.pop("pagination", {})}, **extra}


async def test_the_api_alias_syncs_into_content_index(store: Store, catalog: Catalog,
                                                      tmp_path: Path) -> None:
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(adapters.rest_source,))
    assert registry.source("api") is registry.source("rest") is RestSource
    run = await sync(engine_for(store, tmp_path, paged(catalog), kind="api"))
    assert run.source_type == "rest"
    assert (run.items_processed, run.items_inserted) == (25, 25)
    assert table(store, "SELECT external_id, title, artist, genre, content_type FROM "
                        "content_index WHERE external_id = 't7'") == [
        ("t7", "Song 7", "Artist 0", "rock", "music")]


async def test_incremental_runs_ask_only_for_changes(store: Store, catalog: Catalog,
                                                     tmp_path: Path) -> None:
    options = paged(catalog, incremental={"field": "updated_at", "param": "updated_since"})
    first = await sync(engine_for(store, tmp_path, options))
    assert "updated_since" not in catalog.pages()[0][2]
    newest = catalog.records[-1]["updated_at"]
    assert checkpoint_of(first)["max"] == newest
    catalog.records[2] |= {"name": "Song 3 (remix)", "updated_at": "2024-02-01T00:00:00Z"}
    catalog.records.append(make_records(1, 26)[0] | {"updated_at": "2024-02-02T00:00:00Z"})
    catalog.reset()
    second = await sync(engine_for(store, tmp_path, options))
    assert [q["updated_since"] for _, _, q in catalog.pages()] == [newest]
    # t25 (at the boundary, unchanged), t3 changed, t26 new
    assert (second.items_processed, second.items_updated, second.items_inserted,
            second.items_unchanged) == (3, 1, 1, 1)
    assert checkpoint_of(second)["max"] == "2024-02-02T00:00:00Z"
    assert table(store, "SELECT title FROM content_index WHERE external_id = 't3'") == [
        ("Song 3 (remix)",)]
    catalog.reset()
    third = await sync(engine_for(store, tmp_path, options))
    assert [q["updated_since"] for _, _, q in catalog.pages()] == ["2024-02-02T00:00:00Z"]
    assert third.items_processed == 1


async def test_on_missing_applies_after_a_full_read_and_not_after_a_cut(
        store: Store, catalog: Catalog, tmp_path: Path) -> None:
    job = {"on_missing": "mark_unavailable", "max_missing": "100%"}
    await sync(engine_for(store, tmp_path, paged(catalog), **job))
    del catalog.records[4]  # t5 is gone
    await sync(engine_for(store, tmp_path, paged(catalog), **job))
    assert table(store, "SELECT external_id FROM content_index WHERE NOT is_available") == [
        ("t5",)]
    del catalog.records[0:2]  # t1, t2 gone; but a cut read cannot tell
    catalog.reset()
    cut = paged(catalog, pagination={"max_pages": 2})
    run = await sync(engine_for(store, tmp_path, cut, **job))
    assert run.items_processed == 20 and len(catalog.pages()) == 2
    assert "max_pages (2)" in checkpoint_of(run)["cut"]
    assert table(store, "SELECT external_id FROM content_index WHERE NOT is_available") == [
        ("t5",)]


async def test_an_incremental_read_never_marks_anything_missing(
        store: Store, catalog: Catalog, tmp_path: Path) -> None:
    options = paged(catalog, incremental={"field": "updated_at", "param": "updated_since"})
    job = {"on_missing": "delete", "max_missing": "100%"}
    await sync(engine_for(store, tmp_path, options, **job))
    await sync(engine_for(store, tmp_path, options, **job))  # only t25 comes back
    assert table(store, "SELECT COUNT(*) FROM content_index") == [(25,)]


async def test_a_resumed_run_fetches_no_committed_page_again(
        store: Store, tmp_path: Path) -> None:
    with Catalog(make_records(30), latency=0.03) as fake:
        options = paged(fake, pagination={"limit": 2})  # one batch per page
        engine = engine_for(store, tmp_path, options, batch_rows=2)
        run_id = await engine.start(Request("music", "cli"))

        def committed() -> int:
            return (checkpoint_of(store.run(run_id)) or {}).get("pages", 0)

        await wait_for(lambda: committed() >= 4, timeout=20)
        await engine.shutdown()  # stops after the batch in hand, leaving the run pending
        assert store.run(run_id).status == "pending"
        done = committed()
        asked = len(fake.pages())
        assert done < 15
        again, outcome = await engine_for(store, tmp_path, options, batch_rows=2).run(
            Request("music", "cli"))
        assert again == run_id and outcome.status == "completed", outcome.error
        resumed = [int(q["page"]) for _, _, q in fake.pages()[asked:]]
    # 15 full pages, then an empty 16th ends the read
    assert resumed == list(range(done + 1, 17)), "a committed page was fetched again"
    run = store.run(run_id)
    assert (run.items_processed, run.items_inserted) == (30, 30)


# -- guards --------------------------------------------------------------------------------


@pytest.mark.parametrize("loop, style", [("cursor", "cursor"), ("next", "next_url"),
                                         ("page", "page")])
async def test_a_looping_server_fails_the_run_instead_of_reading_forever(
        loop: str, style: str, store: Store, tmp_path: Path) -> None:
    with Catalog(make_records(25), loop=loop) as fake:
        path, data_path, pagination = STYLES[style]
        options = {"url": fake.url, "path": path, "data_path": data_path,
                   "pagination": pagination}
        engine = engine_for(store, tmp_path, options)
        run_id, outcome = await asyncio.wait_for(engine.run(Request("music", "cli")), 30)
        assert outcome.status == "failed"
        assert "loops" in (outcome.error or "") or "identical" in (outcome.error or "")
        assert len(fake.pages()) <= 3
    [error] = store.run_errors(run_id, 10)[0]
    assert (error.error_code, error.is_retryable) == ("pagination_loop", False)


# -- auth, through a [remotes.NAME] ----------------------------------------------------------

needs_remote_auth = pytest.mark.skipif(
    not hasattr(HttpFactory, "from_config"),
    reason="needs [remotes] and auth= on ctx.client (the remotes work)")


def remote_engine(store: Store, tmp_path: Path, catalog: Catalog, token_env: str) -> Engine:
    jobs = {"music": {"source": {"type": "rest", "remote": "catalog", "path": "/music/catalog",
                                 "data_path": ITEMS, "pagination": PAGED},
                      "target": {"type": "sql", "table": "content_index",
                                 "key": ["external_id"]},
                      "mapping": {"external_id": "id", "artist": "artist.name"}}}
    remotes = {"catalog": {"base_url": catalog.url, "retry": {"attempts": 3},
                           "auth": {"type": "bearer", "token": {"env": token_env}}}}
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "remotes": remotes,
                       "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False,
                                    plugins=(adapters.rest_source, adapters.sql))
    http = HttpFactory.from_config(config.remotes, tmp_path / "state")  # type: ignore[attr-defined]
    return Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state",
                  http=http)  # type: ignore[call-arg]


@needs_remote_auth
async def test_a_remote_with_bearer_auth(store: Store, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_TOKEN", "s3cret-token")
    with Catalog(make_records(25), token="s3cret-token") as fake:
        run = await sync(remote_engine(store, tmp_path, fake, "CATALOG_TOKEN"))
        assert set(fake.auth_headers) == {"Bearer s3cret-token"}
    assert run.items_inserted == 25


@needs_remote_auth
async def test_a_refused_token_fails_the_run_as_auth_without_retries(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_TOKEN", "wrong-token")
    with Catalog(make_records(25), token="s3cret-token") as fake:
        engine = remote_engine(store, tmp_path, fake, "CATALOG_TOKEN")
        run_id, outcome = await engine.run(Request("music", "cli"))
        assert len(fake.pages()) <= 2  # at most one retry after refreshing credentials
    assert outcome.status == "failed"
    [error] = store.run_errors(run_id, 10)[0]
    assert (error.error_type, error.is_retryable) == ("auth", False)
    assert "wrong-token" not in (outcome.error or "")
