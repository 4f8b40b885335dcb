"""OAuth2: cached tokens, renewal before expiry and on a 401, single flight across runs'
threads, rotated refresh tokens saved before use, and no token in any message."""

from __future__ import annotations

import asyncio
import itertools
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.errors import AuthError
from syncd.remote import oauth2
from syncd.remote.http import HttpFactory
from tests.fakes.oauth import OAuthServer
from tests.poll import wait_until

SECRET = "client-secret-XYZ"
_names = itertools.count()


def factory(server: OAuthServer, state_dir: Path | None = None, **auth: Any) -> HttpFactory:
    """A remote with a fresh name, so that each test starts with an empty token cache."""
    settings = {"type": "oauth2", "token_url": server.url + "/token",
                "client_id": server.client_id, "client_secret": {"env": "OAUTH_SECRET"},
                **auth}
    name = f"idp{next(_names)}"
    config = validate({"remotes": {name: {"base_url": server.url, "auth": settings,
                                          "retry": {"attempts": 3, "max_delay": 0.2}}}})
    made = HttpFactory.from_config(config.remotes, state_dir)
    made.name = name  # type: ignore[attr-defined]
    return made


def fetch(made: HttpFactory, count: int = 1) -> list[Any]:
    """``count`` concurrent GET /api/data on one loop; results or exceptions."""

    async def go() -> list[Any]:
        client = made(made.name)  # type: ignore[attr-defined]
        try:
            return await asyncio.gather(*(client.request("GET", "/api/data")
                                          for _ in range(count)), return_exceptions=True)
        finally:
            await client.close()

    return asyncio.run(go())


def fetch_in_threads(made: HttpFactory, threads: int, each: int) -> list[Any]:
    """Like ``threads`` runs at once: each thread its own event loop and client."""
    results: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        found = fetch(made, each)
        with lock:
            results.extend(found)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return results


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_SECRET", SECRET)


def ok(results: list[Any]) -> bool:
    return all(not isinstance(r, BaseException) and r.status == 200 for r in results)


@pytest.mark.parametrize("client_auth", ["basic", "post"])
def test_client_credentials_token_is_cached(client_auth: str) -> None:
    with OAuthServer() as server:
        made = factory(server, client_auth=client_auth, scope="read write")
        assert ok(fetch(made)) and ok(fetch(made, 3))
    assert len(server.token_requests) == 1
    form = server.token_requests[0]
    assert form["grant_type"] == "client_credentials" and form["scope"] == "read write"
    assert ("client_secret" in form) == (client_auth == "post")


def test_a_token_is_renewed_before_it_expires() -> None:
    with OAuthServer(expires_in=61) as server:
        made = factory(server, refresh_margin=60)
        assert ok(fetch(made)) and ok(fetch(made))
        assert len(server.token_requests) == 1  # still more than 60 s from expiry
        wait_until(lambda: ok(fetch(made)) and len(server.token_requests) == 2, timeout=10)


def test_fifty_concurrent_requests_in_five_runs_cause_one_token_request() -> None:
    with OAuthServer(token_delay=0.3) as server:
        made = factory(server)
        results = fetch_in_threads(made, threads=5, each=10)
        assert len(results) == 50 and ok(results), results
        assert len(server.token_requests) == 1
        server.revoke_all()  # every cached token is now refused with a 401
        results = fetch_in_threads(made, threads=5, each=10)
        assert len(results) == 50 and ok(results), results
        assert len(server.token_requests) == 2


def test_a_401_renews_the_token_once_and_a_persistent_401_is_an_auth_error() -> None:
    with OAuthServer() as server:
        made = factory(server)
        assert ok(fetch(made))
        server.reject_all = True
        before = server.api_requests
        [error] = fetch(made)
    assert isinstance(error, AuthError) and error.code == "http_401"
    assert server.api_requests - before == 2  # sent, renewed, sent once more: not retried
    assert len(server.token_requests) == 2
    assert "at-" not in str(error)  # no access token in the message


def test_a_refused_client_is_an_auth_error_without_the_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_SECRET", "wrong-" + SECRET)
    with OAuthServer() as server:
        [error] = fetch(factory(server))
    assert isinstance(error, AuthError) and "invalid_client" in str(error)
    assert SECRET not in str(error)


def test_a_rotated_refresh_token_is_saved_and_supersedes_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFRESH", "rt-0")
    with OAuthServer(rotate=True, refresh_token="rt-0") as server:
        made = factory(server, tmp_path, refresh_token={"env": "REFRESH"})
        assert ok(fetch(made))
        saved = tmp_path / "remotes" / f"{made.name}.json"  # type: ignore[attr-defined]
        [current] = server.refresh_tokens
        assert json.loads(saved.read_text()) == {"refresh_token": current} != "rt-0"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert server.token_requests[0]["grant_type"] == "refresh_token"

        oauth2._CACHES.clear()  # a restart: the config still says rt-0, now refused
        server.revoke_all()
        assert ok(fetch(made))
        assert server.token_requests[-1]["refresh_token"] == current
        assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp left


def test_an_inline_oauth2_client_secret() -> None:
    with OAuthServer() as server:
        made = HttpFactory()

        async def go() -> int:
            client = made("adhoc-oauth", base_url=server.url, auth={
                "type": "oauth2", "token_url": server.url + "/token",
                "client_id": server.client_id, "client_secret": SECRET})
            try:
                return (await client.request("GET", "/api/data")).status
            finally:
                await client.close()

        assert asyncio.run(go()) == 200
