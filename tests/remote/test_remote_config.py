"""``[remotes.NAME]``: validation naming the key, secrets never echoed, remotes named by jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from syncd.config import validate
from syncd.config.remotes import BearerAuth, OAuth2Auth
from syncd.engine import resolve_jobs
from syncd.engine.memory import MemoryTarget
from syncd.errors import ConfigError
from syncd.store import Store
from syncd.testing import make_engine, make_registry, run_job
from tests.fakes.oauth import OAuthServer
from tests.remote.adapters import FetchSource
from tests.syncd_cli import syncd

TOKEN = "tok-PLAIN-0815"


def remote(**keys: Any) -> dict[str, Any]:
    return {"remotes": {"shop": {"base_url": "https://shop.example", **keys}}}


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    return str(caught.value)


def test_a_full_remote() -> None:
    config = validate(remote(timeout=10, rate_limit="10/s", concurrency=2,
                             retry={"attempts": 3, "max_delay": 5},
                             headers={"User-Agent": "syncd"},
                             auth={"type": "oauth2", "token_url": "https://id/token",
                                   "client_id": "c", "client_secret": {"env": "S"},
                                   "refresh_token": {"credential": "rt"}}))
    shop = config.remotes["shop"]
    assert (shop.timeout, shop.rate_limit, shop.retry.attempts) == (10, "10/s", 3)
    assert isinstance(shop.auth, OAuth2Auth) and shop.auth.client_auth == "basic"
    assert validate(remote()).remotes["shop"].auth.type == "none"


@pytest.mark.parametrize("auth, key", [
    ({"type": "bearer", "token": TOKEN}, "auth.token"),
    ({"type": "basic", "username": "ann", "password": TOKEN}, "auth.password"),
    ({"type": "api_key", "name": "k", "value": TOKEN}, "auth.value"),
    ({"type": "oauth2", "token_url": "u", "client_id": "c", "client_secret": TOKEN},
     "auth.client_secret"),
])
def test_a_plain_secret_is_refused_without_echoing_it(auth: dict[str, Any], key: str) -> None:
    message = error_of(remote(auth=auth))
    assert f"remotes.shop.{key}: " in message
    assert "file" in message and "env" in message and "credential" in message
    assert TOKEN not in message


@pytest.mark.parametrize("keys, where, says", [
    ({"rate_limit": "10/x"}, "remotes.shop.rate_limit", "N/s, N/min, N/h or N/d"),
    ({"auth": {"type": "kerberos"}}, "remotes.shop.auth", "oauth2"),
    ({"auth": {"type": "bearer", "token": {"env": "T"}, "scheme": "x"}},
     "remotes.shop.auth.scheme", "allowed: type, token"),
    ({"auth": {"type": "api_key", "name": "k", "in": "body", "value": {"env": "T"}}},
     "remotes.shop.auth.in", "'header' or 'query'"),
    ({"auth": {"type": "bearer", "token": {"env": "T", "file": "/t"}}},
     "remotes.shop.auth.token", "exactly one of"),
    ({"retry": {"attempts": 0}}, "remotes.shop.retry.attempts", "greater than 0"),
])
def test_bad_values_name_the_key(keys: dict[str, Any], where: str, says: str) -> None:
    message = error_of(remote(**keys))
    assert f"{where}: " in message and says in message


def test_form_auth_passes_its_keys_through_for_the_browser() -> None:
    auth = validate(remote(auth={"type": "form", "username": {"credential": "u"},
                                 "password": {"credential": "p"},
                                 "steps": [{"goto": "/login"}], "submit": "#go"})
                    ).remotes["shop"].auth
    assert auth.steps == [{"goto": "/login"}] and auth.model_extra == {"submit": "#go"}


def test_check_config_prints_a_plain_secret_as_one_line(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[remotes.shop]\nbase_url = "https://x"\n'
                    f'[remotes.shop.auth]\ntype = "bearer"\ntoken = "{TOKEN}"\n')
    result = syncd("check-config", "--config", str(path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "remotes.shop.auth.token" in lines[0], result.stderr
    assert TOKEN not in result.stderr + result.stdout


class RemoteTarget(MemoryTarget):
    """A memory target that names a remote, as REST adapters do."""

    name = "remote_memory"

    class Options(MemoryTarget.Options):
        remote: str = Field(description="a [remotes.NAME]")


def test_a_job_naming_an_unknown_remote_fails_naming_the_key() -> None:
    config = validate({**remote(), "jobs": {"push": {
        "source": {"type": "memory"}, "mapping": {"id": "id"},
        "target": {"type": "remote_memory", "remote": "shopp"}}}})
    with pytest.raises(ConfigError) as caught:
        resolve_jobs(config, make_registry([RemoteTarget]), "t.toml")
    message = str(caught.value)
    assert "jobs.push.target.remote" in message and "'shopp'" in message
    assert "remotes: shop" in message


def test_runs_reach_a_configured_remote_with_its_auth(store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with OAuthServer() as server:
        server.tokens[TOKEN] = float("inf")  # a token the API accepts
        monkeypatch.setenv("SHOP_TOKEN", TOKEN)
        engine = make_engine(store, tmp_path / "state", {"pull": {
            "source": {"type": "fetch", "remote": "shop"}, "mapping": {"id": "id"},
            "target": {"type": "memory", "table": "pulled"}}},
            adapters=[FetchSource], remotes={"shop": {
                "base_url": server.url,
                "auth": {"type": "bearer", "token": {"env": "SHOP_TOKEN"}}}})
        _, outcome = run_job(engine, "pull")
    assert outcome.status == "completed", outcome.message
    assert sorted(MemoryTarget.tables["pulled"]) == [(1,), (2,), (3,)]


def test_bearer_model_is_what_the_adapter_gets() -> None:
    auth = validate(remote(auth={"type": "bearer", "token": {"env": "T"}})).remotes["shop"].auth
    assert isinstance(auth, BearerAuth) and str(auth.token) == "<secret>"
