"""No token, password or client secret in a log line, a run's error or its stored errors."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from syncd.errors import AdapterError
from syncd.logs import configure
from syncd.remote.http import HttpFactory
from syncd.store import Store
from syncd.testing import make_engine, run_job
from tests.fakes.oauth import OAuthServer
from tests.remote.adapters import FetchSource

SECRET = "client-secret-XYZ"
TOKEN = "tok-LEAK-CANARY-123"


def everything(store: Store, run_id: int, logs: str) -> str:
    run = store.get_run(run_id)
    assert run is not None
    errors = store.errors_of(run_id)
    return "\n".join([logs, str(run.error_message),
                      *(f"{e.error_message} {e.item_identifier}" for e in errors)])


@pytest.fixture
def syncd_logs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """syncd's own log setup (as the CLI and daemon make it), into a buffer."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure(request.param)
    yield buffer
    structlog.reset_defaults()


@pytest.mark.parametrize("syncd_logs", ["console", "json"], indirect=True)
def test_an_oauth2_run_refused_by_the_remote_leaks_nothing(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        syncd_logs: io.StringIO) -> None:
    monkeypatch.setenv("OAUTH_SECRET", SECRET)
    monkeypatch.setenv("REFRESH", "rt-0")
    with OAuthServer(rotate=True) as server:
        server.reject_all = True
        engine = make_engine(store, tmp_path / "state", {"pull": {
            "source": {"type": "fetch", "remote": "idp"}, "mapping": {"id": "id"},
            "target": {"type": "memory", "table": "refused"}}},
            adapters=[FetchSource], remotes={"idp": {
                "base_url": server.url,
                "auth": {"type": "oauth2", "token_url": server.url + "/token",
                         "client_id": server.client_id,
                         "client_secret": {"env": "OAUTH_SECRET"},
                         "refresh_token": {"env": "REFRESH"}}}})
        run, outcome = run_job(engine, "pull")
        tokens = [*server.tokens, *server.refresh_tokens, SECRET, "rt-0"]
    assert outcome.status == "failed"
    assert "401" in str(run.error_message)
    text = everything(store, run.id, syncd_logs.getvalue())
    assert "run failed" in text and "401" in text  # the failure was logged
    leaked = [t for t in tokens if t in text]
    assert len(tokens) >= 4
    assert not leaked, [line for line in text.splitlines() if any(t in line for t in leaked)]


@pytest.mark.parametrize("auth", [
    {"type": "bearer", "token": TOKEN},
    {"type": "basic", "username": "ann", "password": TOKEN},
    {"type": "api_key", "name": "key", "in": "query", "value": TOKEN},
    {"type": "api_key", "name": "X-Key", "value": TOKEN},
])
def test_an_answer_echoing_the_credentials_is_scrubbed(auth: dict[str, Any]) -> None:
    with OAuthServer() as server:

        async def go() -> AdapterError:
            client = HttpFactory()("careless", base_url=server.url, auth=auth)
            try:
                await client.request("GET", "/reflect")
            except AdapterError as exc:
                return exc
            finally:
                await client.close()
            raise AssertionError("the 400 was not an error")

        error = asyncio.run(go())
    assert "bad request" in str(error) and "***" in str(error)
    assert TOKEN not in str(error)
