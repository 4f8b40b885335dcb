"""What splitting the SQLite first sync into two processes would gain (issue 13's next step).

A standalone model of syncd's hot path, not syncd's code: ``csv.reader``, a blake2b hash
per row, each 20,000-row batch sorted by key, then one ``executemany`` upsert per batch
into a table shaped like ``content_index`` (14 columns, a unique key index, the values
every row shares written into the statement), a checkpoint row with each batch, a
commit about once a second, WAL, ``synchronous = NORMAL``, 16 KiB pages, a 16 MiB cache.

- ``one process``: all of it in one process, as syncd does it today;
- ``two processes``: a reader process parses, hashes, orders and pickles each batch to
  the writer, which unpickles it and upserts it with its checkpoint;
- ``sqlite3 CLI``: the baseline of ``bench/ingest.py`` (``.import`` into a table keyed on
  the id), measured in the same run.

    .venv/bin/python bench/split_prototype.py [--rows 1000000] [--repeat 3] [--workdir DIR]

Prints the medians and each one's ratio to the CLI. syncd's own first sync does more per
row than this model (the duplicate-key index, item labels, counters, progress), about a
second at 1M rows; that gap would remain after a split.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import multiprocessing
import os
import pickle
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from ingest import make_csv

BATCH = 20_000
NOW = "2026-11-30 00:00:00.000000"
TABLE = ("CREATE TABLE content_index (id INTEGER PRIMARY KEY, content_type, title, artist, "
         "genre, source_type, source_identifier, external_id, is_available, content_hash, "
         "sync_job, sync_scope, first_seen_at, last_synced_at)")
UPSERT = (
    "INSERT INTO content_index (external_id, title, artist, genre, content_hash, content_type, "
    "is_available, sync_job, sync_scope, source_type, source_identifier, first_seen_at, "
    f"last_synced_at) VALUES (?, ?, ?, ?, ?, 'music', 1, 'music', '', 'csv', 'music.csv', "
    f"'{NOW}', '{NOW}') ON CONFLICT (external_id) DO UPDATE SET title = excluded.title, "
    "artist = excluded.artist, genre = excluded.genre, content_hash = excluded.content_hash, "
    "last_synced_at = excluded.last_synced_at WHERE content_hash IS NOT excluded.content_hash")
Batch = tuple[list[tuple[str, ...]], list[str], int]  # rows with their hash, items, line


def prepared(csv_path: str) -> Iterator[Batch]:
    """The reader's part: parse, hash and order each batch."""
    blake = hashlib.blake2b(digest_size=16)
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        line = 1
        while rows := [(r[0], r[1], r[2], r[3]) for r in itertools.islice(reader, BATCH)]:
            items = [f"line {n}" for n in range(line + 1, line + 1 + len(rows))]
            line += len(rows)
            digests = []
            for text in ["\x1f".join(values) + "\x1fmusic" for values in rows]:
                hasher = blake.copy()
                hasher.update(text.encode())
                digests.append(hasher.hexdigest())
            order = sorted(range(len(rows)), key=lambda i: rows[i][0])
            yield [(*rows[i], digests[i]) for i in order], [items[i] for i in order], line


def write(db_path: str, batches: Iterator[Batch]) -> int:
    """The writer's part: each batch with its checkpoint, a commit about once a second."""
    db = sqlite3.connect(db_path, isolation_level=None)
    for pragma in ("page_size = 16384", "journal_mode = wal", "synchronous = normal",
                   "cache_size = -16384"):
        db.execute(f"PRAGMA {pragma}")
    db.execute(TABLE)
    db.execute("CREATE UNIQUE INDEX ux_external_id ON content_index (external_id)")
    db.execute("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, line INTEGER)")
    since = time.monotonic()
    db.execute("BEGIN")
    for rows, _items, line in batches:
        db.executemany(UPSERT, rows)
        db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (line,))
        if time.monotonic() - since >= 1:
            db.execute("COMMIT")
            db.execute("BEGIN")
            since = time.monotonic()
    db.execute("COMMIT")
    return int(db.execute("SELECT COUNT(*) FROM content_index").fetchone()[0])


def _read_into(csv_path: str, pipe: Connection) -> None:
    for batch in prepared(csv_path):
        pipe.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    pipe.send_bytes(b"")


def _received(pipe: Connection) -> Iterator[Batch]:
    while data := pipe.recv_bytes():
        yield pickle.loads(data)


def run_model(mode: str, csv_path: str, db_path: str) -> int:
    if mode == "one":
        return write(db_path, prepared(csv_path))
    ours, theirs = multiprocessing.Pipe(duplex=False)
    reader = multiprocessing.get_context("fork").Process(target=_read_into,
                                                         args=(csv_path, theirs))
    reader.start()
    theirs.close()
    try:
        return write(db_path, _received(ours))
    finally:
        reader.join()


def timed(argv: list[str], db: Path, rows: int) -> float:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    if "--_model" in argv and done.stdout.strip() != str(rows):
        sys.exit(f"{argv}: stored {done.stdout.strip()} rows, expected {rows}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, round-robin")
    ap.add_argument("--workdir", type=Path, help="default: a temporary directory")
    ap.add_argument("--_model", nargs=3, metavar=("MODE", "CSV", "DB"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._model:
        print(run_model(*args._model))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="syncd-split-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = str(make_csv(work, args.rows))
    db = work / "model.db"
    cli = shutil.which("sqlite3") or "sqlite3"
    here = [sys.executable, str(Path(__file__).resolve()), "--_model"]
    contenders = {
        "sqlite3 CLI .import": [cli, "-bail", str(db), "CREATE TABLE content_index ("
                                "external_id TEXT PRIMARY KEY, title, artist, genre, year)",
                                f'.import --csv --skip 1 "{csv_path}" content_index'],
        "one process": [*here, "one", csv_path, str(db)],
        "two processes": [*here, "two", csv_path, str(db)],
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, argv in contenders.items():
            times[name].append(timed(argv, db, args.rows))
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["sqlite3 CLI .import"]
    print(f"{args.rows:,} rows, medians of {args.repeat}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, seconds in median.items():
        print(f"  {name:20} {seconds:6.2f} s  {seconds / base:5.2f}x CLI")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
