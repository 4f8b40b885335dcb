"""Real ``syncd run`` daemons sharing one fresh PostgreSQL database: a fleet in a test.

Each daemon has its own state dir, log and unix-socket API, a ``[daemon] host`` of its
own (``d0``, ``d1``…) and the same jobs; the CSV files live in a folder every daemon
lists in ``[fleet] shared_paths``, as a network share would be.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.crashkit import SYNCD, SYSTEMD_ENV
from tests.poll import wait_until

ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}

JOB = """
[jobs.{name}]
batch_rows = {batch_rows}
{schedule}
[jobs.{name}.source]
type = "csv"
{source_path}
[jobs.{name}.target]
type = "sql"
table = "content_index"
key = ["external_id"]
[jobs.{name}.mapping]
external_id = "id"
title = "song_name"
[jobs.{name}.constants]
content_type = "{name}"
"""


def job(name: str, batch_rows: int = 100, every: str = "", path: Path | None = None) -> str:
    return JOB.format(name=name, batch_rows=batch_rows,
                      schedule=f'every = "{every}"' if every else "",
                      source_path=f"path = {json.dumps(str(path))}" if path else "")


def write_csv(path: Path, first_id: int, rows: int) -> None:
    lines = ["id,song_name"] + [f"ID-{i:08d},Song {i}" for i in range(first_id,
                                                                      first_id + rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def fleet_db() -> Iterator[str]:
    """A fresh database ``syncd_fleet_<random>`` on the local server, dropped after."""
    try:
        admin = psycopg2.connect(**ADMIN)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 not reachable: {exc}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable: {exc}")
    admin.autocommit = True
    name = f"syncd_fleet_{uuid.uuid4().hex[:12]}"
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


@dataclass
class Daemon:
    host: str
    root: Path
    sock: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "syncd.log"

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = UnixHTTPConnection(str(self.sock))
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def api_text(self, path: str) -> str:
        conn = UnixHTTPConnection(str(self.sock))
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (
            f"{self.host} exited {self.proc and self.proc.returncode}\n{self.tail()}")
        try:
            return self.api("GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no output)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.host} ---\n" + "\n".join(text[-lines:])

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found


@dataclass
class Cluster:
    """N daemons on the database ``dbname``; ``shared`` is the folder they all read."""

    root: Path
    short: Path
    dbname: str
    lease_seconds: float = 2.0
    jobs: str = ""
    max_concurrent_runs: int = 4
    isolate_runs: str = '"auto"'  # [daemon] isolate_runs, as TOML
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def shared(self) -> Path:
        path = self.root / "shared"
        path.mkdir(exist_ok=True)
        return path

    def config(self, d: Daemon) -> str:
        url = f"postgresql://postgres@127.0.0.1:5432/{self.dbname}"
        return f"""
[daemon]
state_dir = {json.dumps(str(d.root / "state"))}
database = "{url}"
host = "{d.host}"
log_format = "json"
max_concurrent_runs = {self.max_concurrent_runs}
isolate_runs = {self.isolate_runs}
[fleet]
enabled = true
lease_seconds = {self.lease_seconds}
poll_seconds = 0.2
shared_paths = [{json.dumps(str(self.shared))}]
[usb]
enabled = false
[api]
listen = {json.dumps("unix:" + str(d.sock))}
allowed_paths = [{json.dumps(str(self.shared))}]
{self.jobs}"""

    def start(self, count: int) -> list[Daemon]:
        for i in range(count):
            d = Daemon(f"d{i}", self.root / f"d{i}", self.short / f"d{i}.sock")
            d.root.mkdir(parents=True, exist_ok=True)
            (d.root / "syncd.toml").write_text(self.config(d), encoding="utf-8")
            self.launch(d)
            self.daemons.append(d)
        for d in self.daemons:
            wait_until(d.up, 30, message=d.tail)
        return self.daemons

    def launch(self, d: Daemon) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        with d.log.open("ab") as out:
            d.proc = subprocess.Popen([str(SYNCD), "run", "--config",
                                       str(d.root / "syncd.toml")],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      env=environ)

    def by_holder(self, holder: str) -> Daemon:
        host = holder.rpartition(":")[0]
        return next(d for d in self.daemons if d.host == host)

    def tails(self) -> str:
        return "\n".join(d.tail() for d in self.daemons)

    def stop(self) -> None:
        for d in self.daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
                d.proc.send_signal(signal.SIGTERM)
        for d in self.daemons:
            if d.proc is not None:
                try:
                    d.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait(timeout=30)

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(**{**ADMIN, "dbname": self.dbname})
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.fixture
def cluster(tmp_path: Path, fleet_db: str) -> Iterator[Cluster]:
    import shutil
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="syncd-fleet-", dir="/tmp"))
    made = Cluster(tmp_path, short, fleet_db)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(short, ignore_errors=True)
