"""bearer, basic and api_key credentials on every request, and ``ctx.client``'s overrides."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from syncd.config import validate
from syncd.errors import AuthError
from syncd.remote.http import HttpFactory
from tests.fakes.oauth import OAuthServer

TOKEN = "tok-SECRET-4711"


@pytest.fixture(scope="module")
def server() -> Any:
    with OAuthServer() as fake:
        yield fake


def echo(factory: HttpFactory, remote: str, **overrides: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        client = factory(remote, **overrides)
        try:
            return (await client.request("GET", "/echo")).json()
        finally:
            await client.close()

    return asyncio.run(go())


def factory_for(server: OAuthServer, auth: dict[str, Any]) -> HttpFactory:
    config = validate({"remotes": {"api": {"base_url": server.url, "auth": auth}}})
    return HttpFactory.from_config(config.remotes)


def test_bearer_from_env(server: OAuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    seen = echo(factory_for(server, {"type": "bearer", "token": {"env": "API_TOKEN"}}), "api")
    assert seen["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_basic_from_file(server: OAuthServer, tmp_path: Any) -> None:
    (tmp_path / "pw").write_text("pa:ss\n")
    seen = echo(factory_for(server, {"type": "basic", "username": "ann",
                                     "password": {"file": str(tmp_path / "pw")}}), "api")
    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ann:pa:ss").decode()


@pytest.mark.parametrize("where", ["header", "query"])
def test_api_key(server: OAuthServer, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setenv("API_KEY", TOKEN)
    seen = echo(factory_for(server, {"type": "api_key", "name": "X-Key", "in": where,
                                     "value": {"env": "API_KEY"}}), "api")
    found = seen["headers"] if where == "header" else seen["query"]
    assert found["X-Key"] == TOKEN


def test_inline_auth_override_for_an_adapter_with_its_own_url(server: OAuthServer) -> None:
    """What the ad-hoc API does: a URL and an inline bearer token, no [remotes] entry."""
    seen = echo(HttpFactory(), "adhoc", base_url=server.url,
                auth={"type": "bearer", "token": TOKEN}, rate_limit="100/s")
    assert seen["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_override_keeps_the_remote_and_adds_headers(server: OAuthServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    config = validate({"remotes": {"api": {
        "base_url": server.url, "headers": {"User-Agent": "syncd-test"},
        "auth": {"type": "bearer", "token": {"env": "API_TOKEN"}}}}})
    seen = echo(HttpFactory.from_config(config.remotes), "api", headers={"X-Run": "7"},
                timeout=5)
    assert seen["headers"]["User-Agent"] == "syncd-test"
    assert seen["headers"]["X-Run"] == "7"
    assert seen["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_a_missing_secret_is_an_auth_error_naming_where(server: OAuthServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    factory = factory_for(server, {"type": "bearer", "token": {"env": "NOT_SET_TOKEN"}})
    with pytest.raises(AuthError, match="NOT_SET_TOKEN"):
        echo(factory, "api")


def test_a_bad_inline_auth_is_an_auth_error_without_the_value() -> None:
    with pytest.raises(AuthError, match=r"auth\.token") as caught:
        HttpFactory()("adhoc", auth={"type": "bearer", "tokn": TOKEN})
    assert TOKEN not in str(caught.value)
