"""SQLite in the ingest benchmark: the checkpointed floor (a hand-written loader, run as
a subprocess of this file), and preparing and inspecting a SQLite contender's database."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest_bulk import TABLE, Inspection

HERE = str(Path(__file__).resolve())
BATCH = 10_000  # the floor's rows per transaction (and checkpoint)

FLOOR_UPSERT = f"""
INSERT INTO {TABLE} (external_id, title, artist, genre, content_type, content_hash)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(external_id) DO UPDATE SET
    title = excluded.title, artist = excluded.artist, genre = excluded.genre,
    content_type = excluded.content_type, content_hash = excluded.content_hash
WHERE content_hash != excluded.content_hash
"""


def floor_ingest(csv_path: str, db_path: str) -> None:
    """Hand-written baseline, what PERF-NOTES calls "upsert + hash per row + checkpoint row
    per 10k, WAL": csv.reader + executemany upsert, synchronous=NORMAL."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (external_id TEXT PRIMARY KEY,"
        " title, artist, genre, content_type, content_hash)"
    )
    conn.execute('CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY, "offset")')
    conn.execute('INSERT OR REPLACE INTO checkpoint (id, "offset") VALUES (1, 0)')
    offset = written = 0
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        col = {name: i for i, name in enumerate(next(reader))}
        i_id, i_title = col["id"], col["song_name"]
        i_artist, i_genre = col["artist_name"], col["music_genre"]

        def records() -> Iterator[tuple[str, ...]]:
            for row in reader:
                rec = (row[i_id], row[i_title], row[i_artist], row[i_genre], "music")
                digest = hashlib.blake2b("\x1f".join(rec).encode(), digest_size=16)
                yield (*rec, digest.hexdigest())

        rows = records()
        while batch := list(itertools.islice(rows, BATCH)):
            conn.execute("BEGIN")
            before = conn.total_changes
            conn.executemany(FLOOR_UPSERT, batch)
            written += conn.total_changes - before
            offset += len(batch)
            conn.execute('UPDATE checkpoint SET "offset" = ? WHERE id = 1', (offset,))
            conn.execute("COMMIT")
    conn.close()
    print(json.dumps({"rows": offset, "written": written}))


def sqlite_hooks(
    db: Path, fresh: list[Path] | None = None
) -> tuple[Callable[[], str], Callable[[], Inspection]]:
    """prepare (delete the files) and inspect (rows, last sync run) for a SQLite contender."""

    def prepare() -> str:
        remove(fresh or db_files(db))
        return ""

    def inspect() -> Inspection:
        rows, why = count_rows(db)
        return rows, why, last_syncd_run(db)

    return prepare, inspect



def db_files(db: Path) -> list[Path]:
    """A SQLite database file and its companions."""
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


def remove(paths: list[Path]) -> None:
    """Delete files or directory trees, if present."""
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def count_rows(db: Path) -> tuple[int | None, str]:
    """Rows in the target table, or None and why not."""
    if not db.exists():
        return None, f"no database at {db}"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0], ""
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return None, f"cannot count {TABLE} in {db}: {exc}"


def last_syncd_run(db: Path) -> dict[str, object] | None:
    """Counters of syncd's latest run from ``sync_runs``, if readable."""
    cols = "status, items_processed, items_inserted, items_updated, items_unchanged, items_failed"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            cur = conn.execute(f"SELECT {cols} FROM sync_runs ORDER BY id DESC LIMIT 1")
            row = cur.fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return dict(zip([c.strip() for c in cols.split(",")], row, strict=True)) if row else None


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "--_floor":
        floor_ingest(*args)
    else:
        sys.exit("this file is used by bench/ingest.py")
