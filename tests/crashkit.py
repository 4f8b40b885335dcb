"""Real ``syncd`` processes on a real store, and what their store must hold afterwards.

Shared by the crash-safety tests (``tests/test_crash_safety.py``), the daemon tests and
the fault suite (``tests/faults/``): input files that trip naive parsers, a workspace
that starts ``syncd`` processes and kills what is left, polls of the committed run
state, and the exactly-once check. The store is a SQLite file under the workspace's
state dir, or a PostgreSQL database when the workspace names one (``database``).
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

SYNCD = Path(sys.executable).with_name("syncd")
UNFINISHED = ("pending", "in_progress")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal: paused, not failed
POLL_S = 0.002  # a batch of 2000 rows takes tens of milliseconds: see every commit
#: Inherited from a test runner under systemd they would change what syncd does.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID",
               "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID", "SYNCD_CONFIG")

Record = tuple[str, str, str, str]  # external_id, title, artist, genre
#: Where a workspace's store is: a SQLite file, or a PostgreSQL database's URL.
Db = Path | str

CONFIG = """\
[daemon]
state_dir = {state_dir}
log_format = "json"
{daemon_extra}
[jobs.music]
batch_rows = {batch_rows}
[jobs.music.source]
type = "csv"
[jobs.music.target]
type = "sql"
table = "content_index"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
artist = "artist_name"
genre = "music_genre"
[jobs.music.constants]
content_type = "music"
{extra}"""


# -- input ------------------------------------------------------------------------


def write_config(root: Path, *, batch_rows: int = 2000, daemon_extra: str = "",
                 extra: str = "") -> Path:
    """The job of SPEC §3 with its state (and SQLite file) under ``root/state``."""
    path = root / "syncd.toml"
    path.write_text(CONFIG.format(state_dir=json.dumps(str(root / "state")),
                                  batch_rows=batch_rows, daemon_extra=daemon_extra,
                                  extra=extra), encoding="utf-8")
    return path


def write_csv(path: Path, rows: int, seed: int) -> None:
    """Shuffled ids and values that trip naive parsers: quotes, commas, newlines, non-ASCII."""
    rng = random.Random(seed)
    ids = list(range(1, rows + 1))
    rng.shuffle(ids)
    titles: list[Callable[[int], str]] = [
        lambda i: f"Song {i}",
        lambda i: f"Chanson n°{i} — été",
        lambda i: f'He said "stop", then {i}',
        lambda i: f"two\nlines {i}",
        lambda i: f"windows\r\nline {i}",
        lambda i: f"日本語の歌 {i} 🎵",
        lambda i: f"Ünïcödé; tab\there {i}",
    ]
    genres = ["Rock", "Hip-Hop", "Música popular", "R&B, Soul", 'Jazz "modal"', "Ελληνικά"]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "song_name", "artist_name", "music_genre"])
        for i in ids:
            artist = "Earth, Wind & Fire" if i % 13 == 0 else f"Artist {i % 997}"
            writer.writerow([f"ID-{i:07d}", rng.choice(titles)(i), artist, rng.choice(genres)])


def read_csv(path: Path) -> set[Record]:
    """What the table must hold, parsed independently of syncd by the csv module."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return {(r["id"], r["song_name"], r["artist_name"], r["music_genre"]) for r in reader}


# -- reading the database while syncd writes it -----------------------------------


_PG: dict[str, Any] = {}  # one reading connection per PostgreSQL database, polled often


def forget(db: Db) -> None:
    """Close the reading connection to ``db`` (the database is about to be dropped)."""
    con = _PG.pop(db, None) if isinstance(db, str) else None
    if con is not None:
        con.close()


def query(db: Db, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Rows of ``sql`` on a read-only connection, as a dashboard would read them."""
    if isinstance(db, str):
        con = _PG.get(db)
        if con is None or con.closed:
            con = _PG[db] = psycopg2.connect(db)
            con.set_session(readonly=True, autocommit=True)
        with con.cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


@dataclass(frozen=True)
class RunState:
    """The newest run of the job, as committed."""

    id: int
    status: str
    checkpoint: str | None
    processed: int


def run_state(db: Db) -> RunState | None:
    """None while there is no database, table or run yet (the process is starting)."""
    if isinstance(db, Path) and not db.exists():
        return None
    try:
        rows = query(db, "SELECT id, status, checkpoint, items_processed FROM sync_runs "
                         "WHERE job = 'music' ORDER BY id DESC LIMIT 1")
    except sqlite3.OperationalError as exc:  # no such table yet, or a file being created
        if "no such table" in str(exc) or "unable to open" in str(exc):
            return None
        raise
    except sqlite3.DatabaseError:  # the file exists but its header is not written yet
        return None
    except psycopg2.errors.UndefinedTable:  # PostgreSQL: the store is not created yet
        return None
    return RunState(*rows[0]) if rows else None


def wait_for_commits(proc: subprocess.Popen[bytes], db: Db, count: int,
                     timeout: float) -> RunState | None:
    """Poll until ``count`` more batches committed; None if the process exited first."""
    last = run_state(db)
    seen = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run_state(db)
        if state is not None and state.checkpoint is not None and (
                last is None or (state.id, state.checkpoint) != (last.id, last.checkpoint)):
            seen += 1
            last = state
            if seen >= count:
                return state
        if proc.poll() is not None:
            return None
        time.sleep(POLL_S)
    raise AssertionError(f"no commit within {timeout}s (seen {seen} of {count})")


# -- processes --------------------------------------------------------------------


@dataclass
class Workspace:
    """One config, state dir and log; each scenario gets a fresh database."""

    root: Path
    config: Path
    csv: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    database: str = ""  # a PostgreSQL URL, or "" for SQLite in the state dir

    @property
    def db(self) -> Db:
        return self.database or self.root / "state" / "syncd.db"

    @property
    def log(self) -> Path:
        return self.root / "syncd.log"

    def start(self, *args: str, env: dict[str, str] | None = None,
              preexec_fn: Callable[[], object] | None = None) -> subprocess.Popen[bytes]:
        """``syncd ARGS --config C`` (default: sync the CSV), output appended to the log."""
        argv = list(args) or ["sync", "music", "--file", str(self.csv)]
        environ = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        with self.log.open("ab") as out:
            proc = subprocess.Popen([str(SYNCD), *argv, "--config", str(self.config)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env={**environ, **(env or {})}, preexec_fn=preexec_fn)
        self.procs.append(proc)
        return proc

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no output)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def needs_run(self) -> bool:
        """True unless the job's run completed: only an unfinished run may be continued."""
        state = run_state(self.db)
        if state is None:
            return True  # killed before the run existed: starting one is what a user does
        assert state.status != "failed", f"a kill made the run fail\n{self.log_tail()}"
        return state.status in UNFINISHED

    def finish(self, timeout: float = 120) -> None:
        """Run ``syncd sync`` to its end if anything is left, and require exit 0."""
        if not self.needs_run():
            return
        proc = self.start()
        code = proc.wait(timeout=timeout)
        assert code == 0, f"syncd sync exited {code}\n{self.log_tail()}"

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Callable[..., Workspace]]:
    """Make workspaces on a given CSV; every process still running is killed at the end."""
    made: list[Workspace] = []

    def make(csv_path: Path, batch_rows: int = 2000, database: str = "",
             **config: str) -> Workspace:
        root = tmp_path / f"ws{len(made)}"
        root.mkdir()
        if database:
            config["daemon_extra"] = (f"database = {json.dumps(database)}\n"
                                      + config.get("daemon_extra", ""))
        ws = Workspace(root, write_config(root, batch_rows=batch_rows, **config), csv_path,
                       database=database)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()
        forget(ws.db)


# -- checking the outcome ---------------------------------------------------------


def assert_synced(ws: Workspace, expected: set[Record], history: object = "") -> None:
    """The database is sound and holds the CSV exactly once, from one completed run.

    ``history`` (what was done to the processes) is shown when something is off.
    """
    db, rows = ws.db, len(expected)
    if isinstance(db, Path):
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
    runs = query(db, "SELECT id, job, status, items_processed, items_inserted, items_updated, "
                     "items_unchanged, items_skipped, items_failed FROM sync_runs")
    assert [(r[1], r[2]) for r in runs] == [("music", "completed")], (
        f"expected one completed run (resumes continue it), got {runs}\n{ws.log_tail()}")
    _, _, _, processed, inserted, updated, unchanged, skipped, failed = runs[0]
    why = f"counters {runs[0]} after {history}\n{ws.log_tail()}"
    assert processed == rows, why
    assert inserted + updated + unchanged == rows, why
    assert inserted == rows, f"a fresh table gets every record inserted once: {why}"
    assert skipped == failed == 0, why
    assert query(db, "SELECT COUNT(*) FROM sync_errors") == [(0,)]
    assert query(db, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index") == [
        (rows, rows)]
    assert query(db, "SELECT DISTINCT content_type FROM content_index") == [("music",)]
    stored = set(query(db, "SELECT external_id, title, artist, genre FROM content_index"))
    missing, extra = expected - stored, stored - expected
    assert not missing and not extra, (
        f"{len(missing)} CSV records missing or different, e.g. {sorted(missing)[:3]}; "
        f"{len(extra)} unexpected, e.g. {sorted(extra)[:3]}")




def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its new parent counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"
