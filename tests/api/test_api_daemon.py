"""Seed 003's ad-hoc examples against a real ``syncd run``, as a user would send them.

The bodies are the seed's, verbatim but for ``/data/`` (the test's folder, which the
config allows); the daemon reads the CSVs, answers over its unix socket, and the rows
land in its SQLite database.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_api_adhoc import CATALOG_PRICING, EXAMPLE_1, EXAMPLE_3, MUSIC_CATALOG
from tests.poll import wait_until
from tests.syncd_cli import SYNCD


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("syncd", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self.path))


class Daemon:
    """``syncd run`` with no jobs, its API on a unix socket, reading from ``data``."""

    def __init__(self, root: Path) -> None:
        self.root, self.data, self.socket = root, root / "data", root / "api.sock"
        self.data.mkdir()
        self.config = root / "syncd.toml"
        self.config.write_text(
            f"[daemon]\nstate_dir = {json.dumps(str(root / 'state'))}\n"
            f"[usb]\nenabled = false\n"
            f"[api]\nlisten = {json.dumps('unix:' + str(self.socket))}\n"
            f"allowed_paths = [{json.dumps(str(self.data))}]\n")
        self.start()

    def start(self) -> None:
        self.log = (self.root / "daemon.log").open("ab")
        self.proc = subprocess.Popen([SYNCD, "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_until(self.healthy, 30, message=self.log_tail)

    def restart(self) -> None:
        """SIGTERM (runs pause, resumable), then ``syncd run`` again on the same state."""
        self.stop()
        self.start()

    def log_tail(self) -> str:
        return (self.root / "daemon.log").read_text(errors="replace")[-3000:]

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"syncd run exited\n{self.log_tail()}"
        try:
            return self.call("GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: str | None = None) -> tuple[int, Any]:
        conn = UnixConnection(self.socket)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def finished(self, run_id: int) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            status, body = self.call("GET", f"/v1/sync/{run_id}")
            assert status == 200, body
            run = body["data"]
            return run if run["status"] in ("completed", "failed", "cancelled") else None

        return wait_until(final, 30, message=self.log_tail)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "state" / "syncd.db") as db:
            return db.execute(sql).fetchall()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            self.log.close()


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="syncd-seed-", dir="/tmp"))  # socket paths are short
    d = Daemon(root)
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("example,lines,name,table", [
    (EXAMPLE_1, MUSIC_CATALOG, "music_catalog.csv", "content_index"),
    (EXAMPLE_3, CATALOG_PRICING, "catalog_pricing.csv", "catalog_items"),
], ids=["example-1", "example-3"])
def test_seed_003_example_gives_its_3_rows_on_a_real_daemon(
        daemon: Daemon, example: str, lines: list[str], name: str, table: str) -> None:
    (daemon.data / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, body = daemon.call("POST", "/v1/sync/trigger",
                               example.replace("/data/", f"{daemon.data}/"))
    assert status == 202, body
    run = daemon.finished(body["data"]["syncRunId"])
    assert run["status"] == "completed" and run["itemsInserted"] == 3, run
    assert daemon.rows(f"SELECT COUNT(*) FROM {table}") == [(3,)]
