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
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from syncd.api import make_app  # noqa: E402
from syncd.api.openapi import spec  # noqa: E402
from syncd.engine import Request  # noqa: E402
from tests.api_fixtures import (  # noqa: E402
    MUSIC_LINES,
    Harness,
    build,
    csv_job,
    write_lines,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
CONFIG = {
    "seed": 20240601,
    "generation": {"max-examples": 25, "deterministic": True, "database": "none",
                   "mode": "all"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    "request-timeout": 10,
}


class LiveServer:
    """The app served on 127.0.0.1, port chosen by the kernel, from a thread of its own."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
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
        h = self.harness = build(self.state_dir, jobs)
        # some history, so that small run ids exist in every state
        for job in ("music", "broken"):
            await h.engine.run(Request(job, "cli"))
        h.store.create_run(job="music", trigger="cli", source_type="csv",
                           source_identifier="/gone/away.csv")
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
    with LiveServer(tmp_path_factory.mktemp("api") / "state") as server:
        yield server


schema = schemathesis.openapi.from_dict(spec(), config=SchemathesisConfig.from_dict(CONFIG))


def test_the_served_document_is_the_one_tested(live_api: LiveServer) -> None:
    served = schemathesis.openapi.from_url(f"{live_api.url}/v1/openapi.json")
    assert served.raw_schema == spec()


@schema.exclude(path="/v1/events").parametrize()
def test_every_answer_is_documented(case: Any, live_api: LiveServer) -> None:
    case.call_and_validate(base_url=live_api.url, checks=CHECKS)


@schema.include(path="/v1/sync/trigger").parametrize()
def test_adhoc_triggers_on_a_real_file(case: Any, live_api: LiveServer) -> None:
    """Fuzzed ad-hoc options, on a file the API may read: random paths never get that far."""
    if isinstance(case.body, dict):
        case.body.pop("job", None)
        case.body["sourceType"] = "csv"
        case.body["sourceIdentifier"] = str(live_api.state_dir / "music.csv")
    case.call_and_validate(base_url=live_api.url, checks=CHECKS)
