"""The servers' bulk paths into syncd's own table, with the rows syncd stores.

The anchors of bench/ingest_bulk.py load the CSV's five columns into a table with one
index. syncd's ``content_index`` has the columns SPEC §6 names (fourteen) and two
indexes (the id, the unique key), so the server does more per row whatever the client
does. These anchors measure that share: ``COPY … FROM STDIN`` (PostgreSQL) and ``LOAD
DATA LOCAL INFILE`` (MariaDB) of a file holding, for each CSV row, the values syncd
writes (the mapped columns, the constant, the bookkeeping, a 32-digit content hash),
into the table syncd itself created (a one-row sync, then emptied). The file is made
once per N, before anything is timed. Run as a subprocess of bench/ingest.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ingest_bulk import SERVER_DB, TABLE, Contender, admin, connect, db_url, server_hooks

HERE = str(Path(__file__).resolve())
#: anchor -> server kind; its database is ``SERVER_DB`` in ingest_bulk
TABLE_ANCHORS = {"pg-copy-table": "pg", "mariadb-load-table": "mariadb"}
COLUMNS = ("content_type, title, artist, genre, source_type, source_identifier, "
           "external_id, is_available, content_hash, sync_job, sync_scope, first_seen_at, "
           "last_synced_at")
STAMP = "2026-11-30 12:00:00"  # both servers read it into their timestamp column


def stored_rows(csv_path: str, out_path: str) -> None:
    """Write what syncd stores for each row of the CSV, in COPY's text format."""
    with open(csv_path, newline="", encoding="utf-8") as f, \
            open(out_path, "w", encoding="utf-8", newline="") as out:
        reader = csv.reader(f)
        next(reader)
        for ident, title, artist, genre, _year in reader:
            digest = hashlib.blake2b("\x1f".join((ident, title, artist, genre, "music"))
                                     .encode(), digest_size=16).hexdigest()
            out.write("\t".join(("music", title, artist, genre, "csv", csv_path, ident, "1",
                                 digest, "music", "\\N", STAMP, STAMP)) + "\n")


def make_rows(workdir: Path, csv_path: Path) -> Path:
    """The stored-rows file of ``csv_path``: made once, by a subprocess (the parent's RSS
    is inherited by every measured child)."""
    path = csv_path.with_suffix(".stored.tsv")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, HERE, "--_rows", str(csv_path), str(tmp)], check=True)
        os.replace(tmp, path)
    return path


def table_anchor(name: str, csv_path: Path, workdir: Path, n: int, bases: dict[str, str],
                 syncd_sync: list[str], config_for: Callable[[str], Path]) -> Contender:
    """The anchor ``name``: prepare = a fresh database where syncd created its table
    (``syncd_sync`` of a one-row file, with the config ``config_for(url)`` writes),
    emptied; the command loads the stored rows."""
    kind = TABLE_ANCHORS[name]
    url = db_url(bases[kind], SERVER_DB[name])
    rows = make_rows(workdir, csv_path)
    one = workdir / "one-row.csv"
    with open(csv_path, encoding="utf-8") as f:
        one.write_text(f.readline() + f.readline(), encoding="utf-8")
    reset, inspect = server_hooks(name, kind, bases[kind])

    def prepare() -> str:
        why = reset()
        if why:
            return why
        conf = config_for(url)
        made = subprocess.run([*syncd_sync, "--file", str(one), "--config", str(conf)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            return f"syncd could not create its table: {made.stderr.strip()[-200:]}"
        return str(admin("truncate", kind, bases[kind], SERVER_DB[name]).get("error", ""))

    cmd = [sys.executable, HERE, f"--_{kind}", str(rows), url]
    return Contender(name, cmd, None, None, prepare, inspect)


def load(kind: str, rows_path: str, url: str) -> None:
    """The timed part: one ``COPY`` or ``LOAD DATA`` of the stored rows."""
    conn, _ = connect(kind, url)
    cur = conn.cursor()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    if kind == "pg":
        with open(rows_path, encoding="utf-8") as f:
            cur.copy_expert(f"COPY {TABLE} ({COLUMNS}) FROM STDIN", f)
    else:
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {TABLE} CHARACTER SET utf8mb4 "
                    f"({COLUMNS})", (rows_path,))
    print(json.dumps({"rows": cur.rowcount, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "--_rows":
        stored_rows(*args)
    elif mode in ("--_pg", "--_mariadb"):
        load(mode.removeprefix("--_"), *args)
    else:
        sys.exit("this file is used by bench/ingest.py")
