"""A bidirectional pair (SPEC §8): an import (REST → SQL) and an export (SQL → REST) of one
table and key, against the Broadstreet fake, through the real ``syncd`` command.

Records created locally are never imported twice, records created on the remote are
never exported back, and echoes are suppressed: after one change, alternating import
and export runs write nothing more on either side (counted on the fake and by triggers
on the table).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.broadstreet import BroadstreetFake
from tests.syncd_cli import syncd


@pytest.fixture
def api() -> Iterator[BroadstreetFake]:
    with BroadstreetFake() as fake:
        yield fake


def write_config(root: Path, url: str) -> Path:
    state = json.dumps(str(root / "state"))
    text = f"""
[daemon]
state_dir = {state}
log_format = "json"

[jobs.networks_in]
pair = {{ job = "networks_out", new_key = "bs-{{remote_id}}" }}
[jobs.networks_in.source]
type = "rest"
url = "{url}"
path = "/networks"
data_path = "networks"
[jobs.networks_in.target]
type = "sql"
table = "networks"
key = ["uid"]
[jobs.networks_in.mapping]
uid = "id"
name = "name"
web_home_url = "web_home_url"

[jobs.networks_out.source]
type = "sql"
table = "networks"
[jobs.networks_out.target]
type = "rest"
url = "{url}"
key = ["uid"]
create = {{ method = "POST", path = "/networks" }}
update = {{ method = "PUT", path = "/networks/{{remote_id}}" }}
id_path = "network.id"
lookup = {{ path = "/networks", data_path = "networks", match = ["name"] }}
[jobs.networks_out.mapping]
uid = "uid"
name = "name"
web_home_url = "web_home_url"
"""
    path = root / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def sync(cfg: Path, job: str) -> str:
    done = syncd("sync", job, "--config", str(cfg))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "state" / "syncd.db")


def count_table_writes(root: Path) -> None:
    """Triggers counting every insert and update of the table (bookkeeping included)."""
    with db(root) as conn:
        conn.execute("CREATE TABLE writes (n INTEGER)")
        conn.execute("INSERT INTO writes VALUES (0)")
        for event in ("INSERT", "UPDATE"):
            conn.execute(f"CREATE TRIGGER count_{event.lower()} AFTER {event} ON networks "
                         "BEGIN UPDATE writes SET n = n + 1; END")


def table_writes(root: Path) -> int:
    with db(root) as conn:
        return int(conn.execute("SELECT n FROM writes").fetchone()[0])


def rows(root: Path) -> list[tuple[str, str]]:
    with db(root) as conn:
        return list(conn.execute("SELECT uid, name FROM networks ORDER BY uid"))


def cycles(cfg: Path, n: int) -> None:
    for _ in range(n):
        sync(cfg, "networks_in")
        sync(cfg, "networks_out")


def test_a_pair_never_doubles_a_record_and_suppresses_echoes(
        api: BroadstreetFake, tmp_path: Path) -> None:
    born_remote = api.seed("networks", "Remote A", web_home_url="https://a.example")
    cfg = write_config(tmp_path, api.url)
    sync(cfg, "networks_in")  # makes the table: the remote's record, under a key of its own
    assert rows(tmp_path) == [(f"bs-{born_remote}", "Remote A")]
    with db(tmp_path) as conn:
        conn.execute("INSERT INTO networks (uid, name, web_home_url) "
                     "VALUES ('L1', 'Local One', 'https://one.example')")
    count_table_writes(tmp_path)

    out = sync(cfg, "networks_out")  # only the local record goes out; Remote A is not echoed
    assert api.writes() == [("POST", "/api/1/networks")] and "1 inserted" in out
    local_remote = str(api.named("networks", "Local One")[0]["id"])
    sync(cfg, "networks_in")  # the local record comes back: recognised, not doubled
    assert rows(tmp_path) == [("L1", "Local One"), (f"bs-{born_remote}", "Remote A")]
    assert table_writes(tmp_path) == 0
    with db(tmp_path) as conn:
        mapped = dict(conn.execute("SELECT local_key, remote_id FROM id_map "
                                   "WHERE job = 'networks_out' AND state = 'synced'"))
    assert mapped == {"L1": local_remote, f"bs-{born_remote}": born_remote}

    # one local change: the export sends it once, then nothing moves either way
    with db(tmp_path) as conn:
        conn.execute("UPDATE networks SET name = 'Local One v2' WHERE uid = 'L1'")
    baseline = table_writes(tmp_path)
    sync(cfg, "networks_out")
    assert api.writes()[1:] == [("PUT", f"/api/1/networks/{local_remote}")]
    cycles(cfg, 10)
    assert len(api.writes()) == 2, "an echo went back to the remote"
    assert table_writes(tmp_path) == baseline, "an echo was written into the table"

    # one remote change: the import takes it once, the export sends nothing back
    api.records["networks"][born_remote]["name"] = "Remote A v2"
    sync(cfg, "networks_in")
    assert (f"bs-{born_remote}", "Remote A v2") in rows(tmp_path)
    after_import = table_writes(tmp_path)
    cycles(cfg, 3)
    assert len(api.writes()) == 2 and table_writes(tmp_path) == after_import

    # the remote takes back the local change: the import follows, however its table
    # remembered its own earlier write of that very value
    api.records["networks"][local_remote]["name"] = "Local One"
    sync(cfg, "networks_in")
    assert ("L1", "Local One") in rows(tmp_path)
    sync(cfg, "networks_out")
    assert len(api.writes()) == 2
    assert len(rows(tmp_path)) == 2 and not api.duplicates()


def test_a_pair_must_share_its_key(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9")
    cfg.write_text(cfg.read_text().replace('table = "networks"\nkey = ["uid"]',
                                           'table = "networks"\nkey = ["name"]'))
    done = syncd("sync", "networks_in", "--config", str(cfg))
    assert done.returncode != 0
    assert "jobs.networks_in.pair" in done.stderr and "same single field" in done.stderr
