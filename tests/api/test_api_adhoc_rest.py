"""Seed 003's Example 2 (an ad-hoc REST sync with an inline bearer token) on a real daemon.

The body is the seed's, verbatim but for ``sourceIdentifier``, which points at the fake
catalog. The token is used by the run, kept sealed with it (so the run resumes after a
restart) and never found in clear: not in an answer, a log line or a table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.remote.http import HttpFactory
from tests.api import test_api as base
from tests.api import test_api_daemon
from tests.api.test_api import Api
from tests.api.test_api_daemon import Daemon
from tests.fakes.catalog import Catalog, make_records
from tests.poll import wait_until

# the fixtures of test_api (a real app on a real store) and of a real `syncd run`
state_dir, make_api, api = base.state_dir, base.make_api, base.api
daemon = test_api_daemon.daemon

SEED_URL = "https://api.example.com/music/catalog"
TOKEN = "your-api-token"

# seed 003, "Example 2: Sync from REST API"
EXAMPLE_2 = """{
    "sourceType": "api",
    "sourceIdentifier": "https://api.example.com/music/catalog",
    "options": {
      "method": "GET",
      "auth": {
        "type": "bearer",
        "token": "your-api-token"
      },
      "dataPath": "data.items",
      "contentType": "music",
      "fieldMapping": {
        "title": "name",
        "artist": "artist.name",
        "genre": "category",
        "external_id": "id"
      },
      "pagination": {
        "enabled": true,
        "type": "page",
        "limitParam": "limit",
        "pageParam": "page",
        "maxPages": 50
      }
    }
  }"""


def every_table(db: Path) -> str:
    """Every row of every table of the daemon's database, as text."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master "
                                             "WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables
                         for row in conn.execute(f'SELECT * FROM "{t}"'))


def no_token_anywhere(daemon: Daemon, answers: list[Any]) -> None:
    state = daemon.root / "state"
    assert TOKEN not in json.dumps(answers)
    assert TOKEN not in daemon.log_tail() and TOKEN not in (daemon.root / "daemon.log"
                                                             ).read_text(errors="replace")
    assert TOKEN not in every_table(state / "syncd.db")
    for path in state.rglob("*"):
        if path.is_file() and path.name != "sealed.key":
            assert TOKEN.encode() not in path.read_bytes(), path
    assert (state / "sealed.key").stat().st_mode & 0o777 == 0o600


needs_remote_auth = pytest.mark.skipif(
    not hasattr(HttpFactory, "from_config"),
    reason="needs auth= on ctx.client (the remotes work)")


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    with Catalog(make_records(250), token=TOKEN) as fake:
        yield fake


@needs_remote_auth
def test_seed_003_example_2_verbatim_on_a_real_daemon(daemon: Daemon,
                                                      catalog: Catalog) -> None:
    status, body = daemon.call("POST", "/v1/sync/trigger",
                               EXAMPLE_2.replace(SEED_URL, catalog.url + "/music/catalog"))
    assert status == 202, body
    source = body["data"]["source"]
    assert source["auth"] == {"type": "bearer", "token": "***"}
    assert source["pagination"] == {"type": "page", "limitParam": "limit",
                                    "pageParam": "page", "maxPages": 50}
    run = daemon.finished(body["data"]["syncRunId"])
    assert run["status"] == "completed" and run["itemsInserted"] == 250, run
    assert daemon.rows("SELECT external_id, title, artist, genre, content_type, source_type "
                       "FROM content_index WHERE external_id = 't7'") == [
        ("t7", "Song 7", "Artist 0", "rock", "music", "rest")]
    assert daemon.rows("SELECT COUNT(*) FROM content_index") == [(250,)]
    # 100 a page (the default limit): 100, 100, then 50 ends the read
    assert [q for _, _, q in catalog.pages()] == [{"limit": "100", "page": str(n)}
                                                  for n in (1, 2, 3)]
    assert set(catalog.auth_headers) == {f"Bearer {TOKEN}"}
    _, listed = daemon.call("GET", "/v1/sync/runs")
    no_token_anywhere(daemon, [body, run, listed])


@needs_remote_auth
def test_an_inline_token_survives_a_restart_sealed(daemon: Daemon) -> None:
    with Catalog(make_records(1500), token=TOKEN, latency=0.6) as fake:
        status, body = daemon.call("POST", "/v1/sync/trigger",
                                   EXAMPLE_2.replace(SEED_URL, fake.url + "/music/catalog"))
        assert status == 202, body
        run_id = body["data"]["syncRunId"]

        def committed() -> int:
            _, answer = daemon.call("GET", f"/v1/sync/{run_id}")
            return (answer["data"]["checkpoint"] or {}).get("pages", 0)

        wait_until(committed, 30, message=daemon.log_tail)  # some pages are in
        daemon.restart()  # SIGTERM: the run pauses; the new daemon resumes it
        run = daemon.finished(run_id)
        assert run["status"] == "completed" and run["itemsInserted"] == 1500, run
        pages = [int(q["page"]) for _, _, q in fake.pages()]
        assert set(fake.auth_headers) == {f"Bearer {TOKEN}"}
    assert "resuming run" in (daemon.root / "daemon.log").read_text(), daemon.log_tail()
    assert sorted(set(pages)) == list(range(1, 17))  # 15 full pages and the empty 16th
    no_token_anywhere(daemon, [body, run])


# -- wrong requests, in the request's terms ---------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"auth": {"type": "magic"}}, "options.auth.type"),
    ({"pagination": {"pageSize": 3}}, "options.pagination.pageSize"),
    ({"delimiter": ","}, "for CSV sources"),
    ({}, "options.fieldMapping"),
])
async def test_bad_rest_options_are_400s_naming_the_option(api: Api, options: dict[str, Any],
                                                           message: str) -> None:
    mapping = {"fieldMapping": {"external_id": "id"}} if options else {}
    error = await api.trigger(400, sourceType="rest", sourceIdentifier=SEED_URL,
                              options={**mapping, **options})
    assert message in error["message"], error


async def test_a_remote_source_needs_a_url(api: Api) -> None:
    error = await api.trigger(400, sourceType="api", sourceIdentifier="/etc/passwd",
                              options={"fieldMapping": {"external_id": "id"}})
    assert "http://" in error["message"]
