"""The control API against its own OpenAPI document, with Schemathesis.

A live server (a thread with its own event loop) runs the real app on a real store
with real jobs; Schemathesis sends every operation examples, boundary cases and
fuzzed input, deterministically and bounded. Every answer must be documented: its
status, content type and body schema, and none may be a server error.
``/v1/events`` is left out: a stream does not end.

The operations are collected from ``openapi.spec()``, the function the server
answers ``/v1/openapi.json`` with (a test checks the served document is that one):
Schemathesis' lazy ``from_fixture`` loader, which could load it from the live URL,
does not work under pytest 9.2 (it sets ``request.node._nodeid``, which pytest 9.2
no longer has).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from aiohttp import web  # noqa: E402
from schemathesis.checks import CHECKS as ALL_CHECKS  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection  # noqa: E402

from syncd.api import make_app  # noqa: E402
from syncd.api.openapi import spec  # noqa: E402
from syncd.engine import Request  # noqa: E402
from syncd.store import conflicts, idmap  # noqa: E402
from syncd.store.idmap import Settled  # noqa: E402
from tests.api_fixtures import (  # noqa: E402
    MUSIC_LINES,
    Harness,
    build,
    csv_job,
    write_lines,
)

CHECKS = ALL_CHECKS.get_all()  # as `schemathesis run --checks all`
TOKEN = "s3cret-token"
CONFIG: dict[str, Any] = {
    "seed": 20240601,
    "generation": {"max-examples": 25, "deterministic": True, "database": "none",
                   "mode": "all"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    "request-timeout": 10,
    # A well-formed trigger may still name a file that is not there, or a column its
    # header lacks: no schema can say that, so a 400 there is no rejected valid data.
    "operations": [{"include-path": "/v1/sync/trigger", "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "409"]}}},
        # a conflict resolves once: every later well-formed request meets a 409
        {"include-path": "/v1/conflicts/{conflict_id}/resolve", "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409"]}}}],
}


class LiveServer:
    """The app served on 127.0.0.1, port chosen by the kernel, from a thread of its own."""

    def __init__(self, state_dir: Path, token: str | None = None) -> None:
        self.state_dir, self.token = state_dir, token
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-server",
                                       daemon=True)
        self.url = ""
        self.harness: Harness | None = None
        self.runner: web.AppRunner | None = None

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.url = self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    async def _start(self) -> str:
        music = write_lines(self.state_dir / "music.csv", MUSIC_LINES)
        jobs = {"music": csv_job(music, "music", schedule="0 3 * * *"),
                "often": csv_job(music, "often", every="1h"),
                "broken": csv_job(music, "broken", mapping={"external_id": "id", "g": "g"})}
        h = self.harness = build(self.state_dir, jobs, token=self.token)
        # some history, so that small run ids exist in every state
        for job in ("music", "broken"):
            await h.engine.run(Request(job, "cli"))
        h.store.create_run(job="music", trigger="cli", source_type="csv",
                           source_identifier="/gone/away.csv")
        # a ledger to show: id map rows in two states, a conflict to list and resolve
        idmap.settle("music", [Settled("1", "synced", "r1", "h1"),
                               Settled("2", "failed", error="HTTP 400", retryable=False)])
        conflicts.record("music", "1", "r1", {"id": "1", "title": "a"}, {"title": "b"})
        self.runner = web.AppRunner(make_app(h.context), access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self.harness:
            await self.harness.close()
        if self.runner:
            await self.runner.cleanup()
        if self.harness:
            self.harness.store.close()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A daemon with no [api] token."""
    with LiveServer(tmp_path_factory.mktemp("api") / "state") as server:
        yield server


@pytest.fixture(scope="module")
def token_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A daemon with an [api] token: its document declares bearer auth."""
    with LiveServer(tmp_path_factory.mktemp("api") / "state", TOKEN) as server:
        yield server


def load(auth: bool) -> Any:
    config = dict(CONFIG)
    if auth:
        config["auth"] = {"openapi": {"bearer": {"bearer": TOKEN}}}
    return schemathesis.openapi.from_dict(spec(auth=auth),
                                          config=SchemathesisConfig.from_dict(config))


open_schema, token_schema = load(auth=False), load(auth=True)


@pytest.mark.parametrize("protected", [False, True])
def test_the_served_document_describes_that_server(protected: bool, live_api: LiveServer,
                                                   token_api: LiveServer) -> None:
    server = token_api if protected else live_api
    headers = {"Authorization": f"Bearer {TOKEN}"} if protected else {}
    served = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json", headers=headers)
    document = served.raw_schema
    assert document == spec(auth=protected)
    assert ("security" in document) == protected
    assert any("401" in op["responses"] for path, item in document["paths"].items()
               for op in item.values() if path != "/v1/hooks/{job}") == protected
    assert "401" in document["paths"]["/v1/hooks/{job}"]["post"]["responses"]  # signature
    links = document["paths"]["/v1/sync/runs"]["get"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getRun", "retryRun",
                                                                 "cancelRun"}
    trigger = document["components"]["schemas"]["TriggerRequest"]["oneOf"]
    assert [s["$ref"].rsplit("/", 1)[1] for s in trigger] == ["JobTrigger", "AdhocTrigger"]


@open_schema.exclude(path="/v1/events").parametrize()
def test_every_answer_is_documented_without_a_token(case: Any, live_api: LiveServer) -> None:
    case.call_and_validate(base_url=live_api.url, checks=CHECKS)


@token_schema.exclude(path="/v1/events").parametrize()
def test_every_answer_is_documented_with_a_token(case: Any, token_api: LiveServer) -> None:
    case.call_and_validate(base_url=token_api.url, checks=CHECKS)


@open_schema.exclude(path_regex="^(?!/v1/sync/trigger$)").parametrize()  # include() keeps all
def test_adhoc_triggers_on_a_real_file(case: Any, live_api: LiveServer) -> None:
    """Fuzzed ad-hoc options, on a file the API may read: random paths never get that far."""
    checks = CHECKS
    if isinstance(case.body, dict):
        case.body.pop("job", None)
        case.body["sourceType"] = "csv"
        case.body["sourceIdentifier"] = str(live_api.state_dir / "music.csv")
        # the rewrite may have mended what made a negative case invalid
        checks = [c for c in CHECKS if c is not negative_data_rejection]
    case.call_and_validate(base_url=live_api.url, checks=checks)
