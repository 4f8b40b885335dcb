"""``syncd check`` of REST jobs: one authenticated GET, no data touched, no secret shown."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.fakes.broadstreet import BroadstreetFake
from tests.fakes.catalog import Catalog, make_records
from tests.syncd_cli import syncd

TOKEN = "tok-CHECK-5d1e77"


def config(root: Path, api: str, catalog: str, token: str) -> Path:
    (root / "secret").write_text(token)
    path = root / "syncd.toml"
    path.write_text(f"""
[daemon]
state_dir = {json.dumps(str(root / "state"))}
log_format = "json"

[remotes.bs]
base_url = {json.dumps(api)}
retry = {{ attempts = 1 }}
[remotes.bs.auth]
type = "api_key"
name = "access_token"
in = "query"
value = {{ file = {json.dumps(str(root / "secret"))} }}

[remotes.music]
base_url = {json.dumps(catalog)}
retry = {{ attempts = 1 }}
[remotes.music.auth]
type = "bearer"
token = {{ file = {json.dumps(str(root / "secret"))} }}

[jobs.pull]
[jobs.pull.source]
type = "rest"
remote = "music"
path = "/music/catalog"
data_path = "data.items"
[jobs.pull.target]
type = "sql"
table = "music"
key = ["external_id"]
[jobs.pull.mapping]
external_id = "id"

[jobs.push]
[jobs.push.source]
type = "sql"
table = "networks"
[jobs.push.target]
type = "rest"
remote = "bs"
create = {{ method = "POST", path = "/networks" }}
id_path = "network.id"
[jobs.push.mapping]
id = "id"
name = "name"

[jobs.nested]
[jobs.nested.source]
type = "sql"
table = "advertisers"
[jobs.nested.target]
type = "rest"
remote = "bs"
create = {{ method = "POST", path = "/networks/{{network_id}}/advertisers" }}
id_path = "advertiser.id"
[jobs.nested.mapping]
id = "id"
network_id = "network_id"
name = "name"
""")
    (root / "state").mkdir()
    with sqlite3.connect(root / "state" / "syncd.db") as db:
        db.execute("CREATE TABLE networks (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("CREATE TABLE advertisers (id INTEGER PRIMARY KEY, network_id TEXT, "
                   "name TEXT)")
    return path


@pytest.fixture
def fakes():
    with BroadstreetFake(token=TOKEN) as api, \
            Catalog(make_records(5), token=TOKEN) as catalog:
        yield api, catalog


def check(cfg: Path, job: str) -> tuple[int, dict]:
    done = syncd("check", job, "--config", str(cfg), "--json")
    assert TOKEN not in done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout)


def test_check_passes_with_good_credentials_and_touches_no_data(tmp_path, fakes):
    api, catalog = fakes
    cfg = config(tmp_path, api.url, catalog.url, TOKEN)
    code, report = check(cfg, "push")
    assert code == 0 and report["target"]["ok"], report
    assert report["target"]["message"].startswith(f"GET {api.url}/networks answered 200")
    code, report = check(cfg, "pull")
    assert code == 0 and report["source"]["ok"], report
    assert report["source"]["message"].startswith(f"GET {catalog.url}/music/catalog answered 200")
    # a create path with record fields: the remote's base path (404 there: still reached)
    code, report = check(cfg, "nested")
    assert code == 0 and report["target"]["ok"], report
    assert "answered 404: the remote is reachable" in report["target"]["message"]
    assert api.writes() == [] and not any(api.records.values())


def test_refused_credentials_are_an_auth_error_without_the_secret(tmp_path, fakes):
    api, catalog = fakes
    wrong = "tok-WRONG-LEAK-91"
    cfg = config(tmp_path, api.url, catalog.url, wrong)
    for job, side in (("push", "target"), ("nested", "target"), ("pull", "source")):
        done = syncd("check", job, "--config", str(cfg), "--json")
        assert done.returncode == 1, done.stdout + done.stderr
        assert wrong not in done.stdout + done.stderr
        answer = json.loads(done.stdout)[side]
        assert (answer["ok"], answer["errorType"]) == (False, "auth"), answer
        assert "401" in answer["message"]
    assert api.writes() == []
