"""Start-up benchmark: short ``syncd`` commands against bare Python measured in the same run.

    .venv/bin/python bench/startup.py [--repeat 11] [--workdir DIR]

Every command runs ``--repeat`` times, round-robin (one run of each, then the next round),
so load from other processes on the machine falls on all of them alike; times are medians
of whole-process wall time. One unmeasured run of each first lets Python write its
bytecode caches (``PYTHONDONTWRITEBYTECODE`` is dropped for the children).

Rows: ``syncd sync`` of a 5-row CSV into the embedded SQLite default, first with a fresh
state dir (the store's schema is created), then warm (all rows unchanged), then warm with
``rich`` hidden (structlog imports it when it is installed; the test extra brings it,
a production install does not); ``syncd --version``; ``syncd check-config``. Baselines:
``python -c pass``, ``python -c "import sqlite3, csv"``, ``floor``: a script that upserts
the same 5 rows into SQLite (WAL) in one transaction, and ``libraries only``: importing
the libraries a sync is built on (pydantic, peewee and the driver it imports at once,
psycopg2, structlog, pluggy, asyncio, tenacity) and no syncd code, the floor of any
start-up on this stack. (PyMySQL is hidden there, as syncd defers it: ``syncd.deferred``.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROWS = "id,song_name,artist_name,music_genre\n" + "".join(
    f"{i},Song {i},Artist {i},Rock\n" for i in range(1, 6))
CONFIG = """\
[daemon]
state_dir = "{state}"
log_format = "json"

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
"""
FLOOR = """\
import csv, sqlite3, sys
db = sqlite3.connect(sys.argv[2])
db.execute("pragma journal_mode = wal")
db.execute("create table if not exists content_index (external_id text primary key, "
           "title text, artist text, genre text)")
with open(sys.argv[1], newline="") as f, db:
    rows = csv.reader(f)
    next(rows)
    db.executemany("insert into content_index values (?, ?, ?, ?) on conflict (external_id) "
                   "do update set title = excluded.title, artist = excluded.artist, "
                   "genre = excluded.genre", rows)
"""
# What a sync's libraries alone take to import, with nothing of syncd: pydantic (the
# config), peewee with psycopg2, structlog, pluggy, asyncio, tenacity. (rich hidden, as
# in the row without it; PyMySQL too, which syncd imports only to talk to MariaDB.)
# Start-up cannot go below this.
STACK = ("import sys; sys.modules['rich'] = sys.modules['pymysql'] = None; "
         "import csv, sqlite3, asyncio, pluggy, "
         "tenacity, structlog, peewee; from pydantic import BaseModel")
WITHOUT_RICH = ("import sys; sys.modules['rich'] = None; from syncd.cli.main import main; "
                "sys.exit(main())")


def commands(work: Path) -> dict[str, list[str]]:
    py, syncd = str(BIN / "python"), str(BIN / "syncd")
    config, csv = str(work / "syncd.toml"), str(work / "five.csv")
    sync = ["--config", config, "sync", "music", "--file", csv]
    return {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import sqlite3, csv'": [py, "-c", "import sqlite3, csv"],
        "floor: 5-row csv -> sqlite script": [py, str(work / "floor.py"), csv,
                                              str(work / "floor.db")],
        "libraries only (no syncd code)": [py, "-c", STACK],
        "syncd sync, fresh state dir": [syncd, *sync],
        "syncd sync, warm": [syncd, *sync],
        "syncd sync, warm, without rich": [py, "-c", WITHOUT_RICH, *sync],
        "syncd --version": [syncd, "--version"],
        "syncd check-config": [syncd, "--config", config, "check-config"],
    }


def timed(name: str, argv: list[str], work: Path, env: dict[str, str]) -> float:
    if name.endswith("fresh state dir"):
        shutil.rmtree(work / "state", ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{name}: exit {done.returncode}\n{done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=11, help="runs per command (median)")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="syncd-bench-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "five.csv").write_text(ROWS)
    (work / "floor.py").write_text(FLOOR)
    (work / "syncd.toml").write_text(CONFIG.format(state=work / "state"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    table = commands(work)
    times: dict[str, list[float]] = {name: [] for name in table}
    for name, argv in table.items():  # warm-up: bytecode caches, page cache
        timed(name, argv, work, env)
    for _ in range(args.repeat):
        for name, argv in table.items():
            times[name].append(timed(name, argv, work, env))
    median = {name: statistics.median(t) for name, t in times.items()}
    bare, floor = median["python -c pass"], median["floor: 5-row csv -> sqlite script"]
    print(f"medians of {args.repeat} runs, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"| {'command':34} | wall s | vs python -c pass | vs floor |")
    print(f"|{'-' * 36}|-------:|------------------:|---------:|")
    for name, seconds in median.items():
        print(f"| {name:34} | {seconds:6.3f} | {seconds / bare:16.1f}x | "
              f"{seconds / floor:7.1f}x |")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
