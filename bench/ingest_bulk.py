"""Bulk-path anchors for bench/ingest.py, and the database servers syncd is compared on.

The anchors are what each engine does at its own speed with the same CSV: the sqlite3
command-line ``.import``, PostgreSQL ``COPY … FROM STDIN``, MariaDB ``LOAD DATA LOCAL
INFILE``, each into a fresh table with a primary key. Server work (creating, dropping and
inspecting the per-contender databases, the COPY and the LOAD DATA themselves) runs in
subprocesses of this file, so the driver imports never raise the RSS inherited by the
measured children (see README.md, "Peak RSS caveat").
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

TABLE = "content_index"
HERE = str(Path(__file__).resolve())
ADMIN_TIMEOUT = 300.0
INSERT_BATCH = 1000  # rows per multi-row INSERT when MariaDB refuses LOAD DATA LOCAL
SERVERS = {"pg": "PostgreSQL", "mariadb": "MariaDB"}
DEFAULT_URLS = {
    "pg": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
}
# contender -> (server kind or None for SQLite, its own database name)
ANCHORS = {"sqlite3-cli": None, "pg-copy": "pg", "mariadb-load": "mariadb"}
SERVER_DB = {
    "pg-copy": "syncd_bench_pg_copy",
    "syncd-pg": "syncd_bench_pg",
    "mariadb-load": "syncd_bench_mariadb_load",
    "pg-copy-table": "syncd_bench_pg_copy_table",
    "mariadb-load-table": "syncd_bench_mariadb_load_table",
    "syncd-mariadb": "syncd_bench_mariadb",
}
# The anchors' table: the CSV's five columns as they are, the id as the primary key.
COLUMNS = "title {t}, artist {t}, genre {t}, year {t}"
DDL = {
    None: f"CREATE TABLE {TABLE} (external_id TEXT PRIMARY KEY, {COLUMNS.format(t='')})",
    "pg": f"CREATE TABLE {TABLE} (external_id TEXT PRIMARY KEY, {COLUMNS.format(t='TEXT')})",
    "mariadb": f"CREATE TABLE {TABLE} (external_id VARCHAR(191) PRIMARY KEY, "
    f"{COLUMNS.format(t='TEXT')}) ENGINE=InnoDB",
}

Inspection = tuple[int | None, str, dict[str, object] | None]  # rows, why not, last sync run


@dataclass
class Contender:
    """How to run one contender: its commands and how to reset and inspect its database.

    ``resync``/``changed`` are None where that phase is not meaningful (a bulk load of the
    same rows again would only hit the primary key).
    """

    name: str
    first: list[str]
    resync: list[str] | None
    changed: list[str] | None
    prepare: Callable[[], str]  # empties the database; returns why it could not, or ""
    inspect: Callable[[], Inspection]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def server_of(name: str) -> str | None:
    """The server kind a contender writes to, None for SQLite."""
    if name in ("pg-copy", "syncd-pg", "pg-copy-table"):
        return "pg"
    return "mariadb" if name in ("mariadb-load", "syncd-mariadb", "mariadb-load-table") else None


def db_url(base: str, dbname: str) -> str:
    """``base`` with its database replaced by ``dbname``."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


# --------------------------------------------------------------------------- parent side


def admin(action: str, kind: str, base: str, dbname: str = "") -> dict[str, object]:
    """Run one server chore in a subprocess; its JSON answer, or {"error": why}."""
    cmd = [sys.executable, HERE, "--_admin", action, kind, base, dbname]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=ADMIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"error": f"{action} timed out after {ADMIN_TIMEOUT:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {"error": tail}
    answer: dict[str, object] = json.loads(lines[-1])
    return answer


def server_hooks(
    name: str, kind: str, base: str, marker: Path | None = None
) -> tuple[Callable[[], str], Callable[[], Inspection]]:
    """prepare (drop and create the contender's database) and inspect, for a server."""
    dbname = SERVER_DB[name]

    def prepare() -> str:
        if marker:
            marker.unlink(missing_ok=True)
        return str(admin("reset", kind, base, dbname).get("error", ""))

    def inspect() -> Inspection:
        got = admin("inspect", kind, base, dbname)
        if "error" in got:
            return None, f"cannot inspect {dbname}: {got['error']}", None
        run = got.get("run")
        if marker and marker.exists():
            run = {"bulk_path": marker.read_text(encoding="utf-8").strip()}
        return got["rows"], "", run if isinstance(run, dict) else None  # type: ignore[return-value]

    return prepare, inspect


def anchor(name: str, csv_path: Path, workdir: Path, n: int, bases: dict[str, str]) -> Contender:
    """The bulk-path contender ``name`` for one CSV: no re-sync, no changed re-sync."""
    kind = ANCHORS[name]
    if kind is None:
        db = workdir / f"sqlite3-cli-{n}.db"
        sqlite3_cli = shutil.which("sqlite3") or "sqlite3"
        cmd = [
            sqlite3_cli,
            "-bail",
            str(db),
            DDL[None],
            f'.import --csv --skip 1 "{csv_path}" {TABLE}',
        ]

        def prepare() -> str:
            for p in (db, db.with_name(db.name + "-journal")):
                p.unlink(missing_ok=True)
            return ""

        return Contender(name, cmd, None, None, prepare, lambda: sqlite_rows(db))
    marker = workdir / f"{name}-{n}.path" if kind == "mariadb" else None
    url = db_url(bases[kind], SERVER_DB[name])
    cmd = [sys.executable, HERE, f"--_{kind}_load", str(csv_path), url, str(marker or "")]
    prepare, inspect = server_hooks(name, kind, bases[kind], marker)
    return Contender(name, cmd, None, None, prepare, inspect)


def sqlite_rows(db: Path) -> Inspection:
    """Rows in the table of a SQLite file (no sync run to read)."""
    import sqlite3

    if not db.exists():
        return None, f"no database at {db}", None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0], "", None
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return None, f"cannot count {TABLE} in {db}: {exc}", None


# --------------------------------------------------------------------------- child side


def connect(kind: str, url: str) -> tuple[object, str]:
    """A DB-API connection (autocommit) and the identifier quote of the server."""
    u = urlsplit(url)
    if kind == "pg":
        import psycopg2

        conn = psycopg2.connect(url)
        conn.autocommit = True
        return conn, '"'
    import pymysql

    conn = pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=u.path.lstrip("/") or None,
        local_infile=True,
        autocommit=True,
        charset="utf8mb4",
    )
    return conn, "`"


def do_admin(action: str, kind: str, base: str, dbname: str) -> dict[str, object]:
    """ping / reset / drop / inspect / truncate: the server chores of the parent."""
    if action == "inspect":
        conn, _ = connect(kind, db_url(base, dbname))
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute(f"SELECT count(*) FROM {TABLE}")
        rows = cur.fetchone()[0]
        cols = (
            "status",
            "items_processed",
            "items_inserted",
            "items_updated",
            "items_unchanged",
            "items_failed",
        )
        try:
            cur.execute(f"SELECT {', '.join(cols)} FROM sync_runs ORDER BY id DESC LIMIT 1")
            row = cur.fetchone()
        except Exception:
            row = None
        return {"rows": rows, "run": dict(zip(cols, row, strict=True)) if row else None}
    if action == "truncate":  # the table syncd made, emptied (its id counter too)
        conn, _ = connect(kind, db_url(base, dbname))
        restart = " RESTART IDENTITY" if kind == "pg" else ""
        conn.cursor().execute(f"TRUNCATE {TABLE}{restart}")  # type: ignore[attr-defined]
        return {}
    conn, q = connect(kind, base)
    cur = conn.cursor()  # type: ignore[attr-defined]
    force = " WITH (FORCE)" if kind == "pg" else ""
    if action in ("reset", "drop"):
        cur.execute(f"DROP DATABASE IF EXISTS {q}{dbname}{q}{force}")
    if action == "reset":
        charset = " CHARACTER SET utf8mb4" if kind == "mariadb" else ""
        cur.execute(f"CREATE DATABASE {q}{dbname}{q}{charset}")
    if action == "ping":
        cur.execute("SELECT version()")
        return {"version": str(cur.fetchone()[0]).split(" on ")[0]}
    return {}


def pg_load(csv_path: str, url: str) -> None:
    """``COPY … FROM STDIN (FORMAT csv, HEADER)`` into a fresh table with a primary key."""
    conn, _ = connect("pg", url)
    cur = conn.cursor()  # type: ignore[attr-defined]
    cur.execute(DDL["pg"])
    with open(csv_path, encoding="utf-8") as f:
        cur.copy_expert(f"COPY {TABLE} FROM STDIN (FORMAT csv, HEADER)", f)
    print(json.dumps({"rows": cur.rowcount, "path": "copy"}))


def mariadb_load(csv_path: str, url: str, marker: str) -> None:
    """``LOAD DATA LOCAL INFILE``; if refused, multi-row INSERTs of 1000 (noted in marker)."""
    import pymysql

    conn, _ = connect("mariadb", url)
    cur = conn.cursor()  # type: ignore[attr-defined]
    cur.execute(DDL["mariadb"])
    try:
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {TABLE} CHARACTER SET utf8mb4"
            " FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY ''"
            " LINES TERMINATED BY '\\n' IGNORE 1 LINES",
            (csv_path,),
        )
        print(json.dumps({"rows": cur.rowcount, "path": "load-data"}))
        return
    except pymysql.err.MySQLError as exc:
        why = f"multi-row INSERT x{INSERT_BATCH} (LOAD DATA LOCAL refused: {exc.args[-1]})"
    Path(marker).write_text(why + "\n", encoding="utf-8")
    conn.autocommit(False)  # type: ignore[attr-defined]
    sql = f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s)"
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        while batch := list(itertools.islice(reader, INSERT_BATCH)):
            cur.executemany(sql, batch)  # PyMySQL folds INSERT … VALUES into one statement
            conn.commit()  # type: ignore[attr-defined]
    print(json.dumps({"path": why}))


def main(argv: list[str] | None = None) -> int:
    """Child modes, started by bench/ingest.py."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--_admin", nargs=4, metavar=("ACTION", "KIND", "BASE", "DB"))
    ap.add_argument("--_pg_load", nargs=3, metavar=("CSV", "URL", "UNUSED"))
    ap.add_argument("--_mariadb_load", nargs=3, metavar=("CSV", "URL", "MARKER"))
    args = ap.parse_args(argv)
    if args._admin:
        try:
            answer = do_admin(*args._admin)
        except Exception as exc:  # the parent shows why: a server down, a bad URL, SQL
            answer = {"error": (str(exc).strip().splitlines() or [repr(exc)])[0]}
        print(json.dumps(answer, default=str))
    elif args._pg_load:
        pg_load(*args._pg_load[:2])
    elif args._mariadb_load:
        mariadb_load(*args._mariadb_load)
    else:
        ap.error("this file is used by bench/ingest.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
