"""Faults a run meets in the field: a full disk, a database server that drops us.

Real ones: a small tmpfs holding the SQLite store, filled by the run itself; a
PostgreSQL server whose backends are terminated under a running run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee as pw
import pytest

from syncd.config import validate
from syncd.engine import resolve_jobs
from syncd.engine.executor import Progress, RunExecutor, Stop
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from tests.api_fixtures import write_rows
from tests.poll import wait_until
from tests.syncd_cli import SYNCD, syncd

CONFIG = """\
[daemon]
state_dir = "{state}"
log_format = "json"
[usb]
enabled = false
[jobs.music]
batch_rows = 2000
[jobs.music.source]
type = "csv"
path = "{csv}"
[jobs.music.target]
type = "sql"
table = "songs"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "title"
artist = "artist"
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: the store on it fills up a few batches into a 30k-row run."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Take every byte left on ``disk``."""
    with (disk / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_is_one_clear_error_and_the_run_completes_once_space_returns(
        small_disk, tmp_path):
    rows = 30_000
    csv = write_rows(tmp_path / "music.csv", rows)
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.format(state=small_disk, csv=csv))

    first = syncd("--config", str(config), "sync", "music")
    assert first.returncode == 1, first.stdout + first.stderr
    out = first.stdout + first.stderr
    assert "disk holding the database is full" in out and "Traceback" not in out
    assert "cannot rollback" not in out

    fill(small_disk)  # still full, to the last byte: a second try
    second = syncd("--config", str(config), "sync", "music")
    out = second.stdout + second.stderr
    assert second.returncode != 0 and "Traceback" not in out, out
    assert "disk holding the database is full" in out

    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    third = syncd("--config", str(config), "sync", "music")
    assert third.returncode == 0, third.stdout + third.stderr

    db = sqlite3.connect(small_disk / "syncd.db")
    count, distinct = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM songs").fetchone()
    assert count == distinct == rows
    statuses = [s for (s,) in db.execute("SELECT status FROM sync_runs ORDER BY id")]
    assert statuses[-1] == "completed" and "in_progress" not in statuses
    retryable = db.execute("SELECT error_type, error_code, is_retryable FROM sync_errors "
                           "WHERE error_code = 'disk_full'").fetchall()
    assert retryable and all(r == ("system", "disk_full", 1) for r in retryable)


# -- PostgreSQL drops the connection ------------------------------------------------------


def terminate_backends(admin: pw.Database, database: str) -> int:
    """Kill every connection to ``database`` (ours only: other tests share the server)."""
    cursor = admin.execute_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
    return len(cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_run_survives_its_database_connections_being_terminated(store, database_url,
                                                                  tmp_path):
    rows = 20_000
    csv = write_rows(tmp_path / "music.csv", rows)
    cfg = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "usb": {"enabled": False},
                    "jobs": {"music": {
                        "source": {"type": "csv", "path": str(csv)},
                        "target": {"type": "sql", "table": "songs", "key": ["external_id"]},
                        "mapping": {"external_id": "id", "title": "title", "artist": "artist"},
                        "batch_rows": 1000,
                        "retry": {"attempts": 5, "initial_s": 0.2, "max_s": 1}}}})
    _, registry = get_pluginmanager(load_entrypoints=True)
    plan = resolve_jobs(cfg, registry, "test.toml")["music"]
    name = database_url.rsplit("/", 1)[1]
    admin = pw.PostgresqlDatabase("test", host="127.0.0.1", user="postgres")
    killed: list[int] = []

    due = [3000, 11000]  # twice, mid-run (once each: a retry passes them again)

    def kill_at_batches(progress: Progress) -> None:
        if due and progress.processed >= due[0]:
            due.pop(0)
            killed.append(terminate_backends(admin, name))

    source = plan.make_source()
    run_id = store.create_run(job="music", trigger="cli", source_type="csv",
                              source_identifier=source.identifier)
    outcome = RunExecutor(store, plan, run_id, source, Stop(), on_progress=kill_at_batches,
                          state_dir=tmp_path / "state").execute()
    admin.close()
    assert killed and all(killed), "no connection was terminated"
    assert outcome.status == "completed", outcome.error
    count, distinct = store.db.execute_sql(
        "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM songs").fetchone()
    assert count == distinct == rows
    run = store.get_run(run_id)
    assert (run.status, run.items_processed, run.items_inserted) == ("completed", rows, rows)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket closes


async def test_health_answers_503_at_once_while_the_database_is_down(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from syncd.api.app import make_app
    from syncd.store.database import ReconnectingPostgres
    from tests.api_fixtures import build

    harness = build(tmp_path / "state", {})
    down = Store(ReconnectingPostgres("x", host="127.0.0.1", port=closed_port(),
                                      user="postgres", connect_timeout=2))
    harness.context.store = down
    client = TestClient(TestServer(make_app(harness.context)))
    await client.start_server()
    try:
        response = await client.get("/v1/health")
        body: Any = await response.json()
    finally:
        await client.close()
        await harness.close()
        harness.store.close()
    assert response.status == 503
    assert body["success"] is False and body["error"]["code"] == "database_unreachable"


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_daemon_stays_up_and_its_run_completes_when_postgres_drops_it(
        database_url, tmp_path):
    rows = 60_000
    csv = write_rows(tmp_path / "music.csv", rows)
    port = closed_port()
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.replace("[usb]", f'database = "{database_url}"\n[api]\n'
                                     f'listen = "127.0.0.1:{port}"\n[usb]')
                      .format(state=tmp_path / "state", csv=csv)
                      + "[jobs.music.retry]\nattempts = 8\ninitial_s = 0.2\nmax_s = 2\n")
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([SYNCD, "--config", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}"
    name = database_url.rsplit("/", 1)[1]
    admin = pw.PostgresqlDatabase(name, host="127.0.0.1", user="postgres")

    def alive() -> bool:
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
        return True

    def run_state() -> tuple[str, int] | None:
        found = admin.execute_sql("SELECT status, items_processed FROM sync_runs "
                                  "ORDER BY id DESC LIMIT 1").fetchone()
        return found

    try:
        wait_until(lambda: alive() and http("GET", api + "/v1/health")[0] == 200, timeout=30)
        status, body = http("POST", api + "/v1/sync/trigger", {"job": "music"})
        assert status == 202, body
        kills = 0
        for share in (0.1, 0.5):  # cut it off twice, early and midway
            wait_until(lambda share=share: alive() and (state := run_state()) is not None
                       and state[1] >= rows * share, timeout=60)
            kills += terminate_backends(admin, name)
        assert kills >= 2
        wait_until(lambda: alive() and run_state() == ("completed", rows), timeout=90,
                   message=lambda: f"{run_state()}\n"
                   + (tmp_path / "daemon.log").read_text()[-3000:])
        count, distinct = admin.execute_sql(
            "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM songs").fetchone()
        assert count == distinct == rows
        assert http("GET", api + "/v1/health")[0] == 200
    finally:
        admin.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
