"""CSV -> SQLite ingest benchmark: syncd against baselines measured in the same run.

Every contender runs as its own subprocess, so wall time and peak RSS (``ru_maxrss`` from
``os.wait4``) belong to exactly that process. Each contender first syncs into an empty
database, then runs the same sync again on the populated database ("unchanged re-sync").

    .venv/bin/python bench/ingest.py [--rows 100000 1000000] [--repeat 1] [--workdir DIR]
                                     [--only floor,syncd,...] [--json FILE]

See bench/README.md for what each contender does and how the verdict is reached.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import csv
import hashlib
import itertools
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
TABLE = "content_index"
BATCH = 10_000
CSV_VERSION = 1  # bump when the generated CSV changes, so cached files are regenerated
LOG_TAIL_LINES = 25

# Targets from the brief (see README.md).
MAX_FIRST_VS_FLOOR = 1.5
MAX_RESYNC_VS_FIRST = 0.5
MAX_RSS_MB_AT_1M = 150.0
# "Flat": syncd's peak RSS at the largest N is at most this times that at the smallest N.
MAX_RSS_GROWTH = 1.25

CONTENDERS = ("floor", "sqlite-utils-insert", "sqlite-utils-upsert", "syncd")
LABELS = {
    "floor": "floor",
    "sqlite-utils-insert": "sqlite-utils insert",
    "sqlite-utils-upsert": "sqlite-utils upsert",
    "syncd": "syncd",
}

WORDS = ("Blue", "Night", "Echo", "River", "Gold", "Silent", "Neon", "Summer")
WORDS += ("Paper", "Velvet", "Wild", "Glass", "Honey", "Stone", "Ghost", "Ember")
GENRES = ("Rock", "Jazz", "Pop", "Blues", "Electronic", "Hip-Hop", "Folk", "Classical", "Anime")

SYNCD_CONFIG = """\
[daemon]
state_dir = "{state_dir}"
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

[jobs.music.constants]
content_type = "music"
"""


# --------------------------------------------------------------------------- floor


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


# --------------------------------------------------------------------------- data


def parse_count(text: str) -> int:
    """Parse a row count such as ``100000``, ``100k`` or ``1M``."""
    text = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = int(float(text[:-1]) * scale) if scale > 1 else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("row count must be positive")
    return value


def write_csv(n: int, path: str) -> None:
    """Write N rows with ids 1..N shuffled by Random(42) and values derived from the id."""
    ids = array.array("l", range(1, n + 1))
    random.Random(42).shuffle(ids)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("id", "song_name", "artist_name", "music_genre", "year"))
        writer.writerows(
            (
                i,
                f"{WORDS[i % 16]} {WORDS[i // 16 % 16]} (Take {i})",
                f"{WORDS[i // 256 % 16]} Band {i % 9973}",
                GENRES[i % len(GENRES)],
                1950 + i * 7 % 75,
            )
            for i in ids
        )


def make_csv(workdir: Path, n: int) -> Path:
    """The CSV for N rows, generated once (cached by N in workdir).

    It is written by a subprocess: a child's ru_maxrss includes the RSS of the process it
    was spawned from, so this process must stay small for the figures to be honest.
    """
    path = workdir / f"music-v{CSV_VERSION}-{n}.csv"
    if path.exists():
        return path
    tmp = path.with_suffix(".csv.tmp")
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_gen", str(n), str(tmp)], check=True
    )
    os.replace(tmp, path)
    size = path.stat().st_size
    say(f"generated {path} ({size / n:.0f} bytes a row) in {time.perf_counter() - t0:.1f} s")
    return path


# --------------------------------------------------------------------------- running


@dataclass
class Proc:
    """One measured subprocess."""

    ok: bool
    seconds: float
    rss_kib: int
    cpu_seconds: float
    written_mb: float  # MB this process had written to storage (ru_oublock, 512-byte units)
    error: str = ""


def say(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def measure(cmd: list[str], log_path: Path, timeout: float, env: dict[str, str]) -> Proc:
    """Run cmd with its output appended to log_path; wall time and rusage of that child only."""
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        log.flush()
        start = log.tell()
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _kill_group(proc.pid)

        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return Proc(False, 0.0, 0, 0.0, 0.0, f"cannot start: {exc}")
        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: do not leave the child running in its own session
            _kill_group(proc.pid)
            os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
    result = Proc(
        ok=code == 0,
        seconds=seconds,
        rss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        written_mb=usage.ru_oublock * 512 / 1e6,
    )
    if timed_out.is_set():
        result.ok, result.error = False, f"timed out after {timeout:.0f} s"
    elif code != 0:
        result.error = f"exit code {code}"
    if not result.ok:
        with open(log_path, "rb") as log:
            log.seek(start)
            tail = log.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        say(f"  FAILED ({result.error}): {' '.join(cmd)}\n  --- log tail ({log_path}) ---")
        for line in tail:
            say(f"  | {line}")
    return result


@dataclass
class Contender:
    """How to run one contender: commands for the first and the re-sync, where its table is."""

    name: str
    db: Path
    first: list[str]
    resync: list[str]
    fresh: list[Path]  # deleted before each first sync
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def contender(name: str, csv_path: Path, workdir: Path, n: int) -> Contender:
    """Build the commands of one contender for one CSV."""
    if name == "floor":
        db = workdir / f"floor-{n}.db"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_floor", str(csv_path), str(db)]
        return Contender(name, db, cmd, cmd, db_files(db))
    if name.startswith("sqlite-utils-"):
        db = workdir / f"{name}-{n}.db"
        tool = str(BIN / "sqlite-utils")
        args = [str(db), TABLE, str(csv_path), "--csv", "--pk", "id"]
        first = [tool, name.removeprefix("sqlite-utils-"), *args]
        return Contender(name, db, first, [tool, "upsert", *args], db_files(db))
    if name == "syncd":
        state_dir = workdir / "syncd-state"
        conf = workdir / "syncd.toml"
        conf.write_text(SYNCD_CONFIG.format(state_dir=toml_str(state_dir)), encoding="utf-8")
        cmd = [str(BIN / "syncd"), "sync", "music", "--file", str(csv_path), "--config", str(conf)]
        env = dict(os.environ, SYNCD_CONFIG=str(conf))
        return Contender(name, state_dir / "syncd.db", cmd, cmd, [state_dir], env)
    raise ValueError(name)


def toml_str(path: Path) -> str:
    """A path as the inside of a TOML basic string."""
    return str(path).replace("\\", "\\\\").replace('"', '\\"')


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


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """All repeats of one contender at one N."""

    name: str
    rows: int
    first: list[Proc] = field(default_factory=list)
    resync: list[Proc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        runs = self.first + self.resync
        return bool(runs) and all(p.ok for p in runs) and len(self.resync) == len(self.first)

    def seconds(self, phase: str) -> float | None:
        runs = getattr(self, phase)
        return statistics.median(p.seconds for p in runs) if self.ok else None

    def rss_mb(self, phase: str) -> float | None:
        runs = getattr(self, phase)
        return max(p.rss_kib for p in runs) / 1024 if self.ok else None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            say(f"  WARNING: {LABELS[self.name]} at {self.rows:,}: {text}")


def run_contender(c: Contender, res: Result, log: Path, timeout: float) -> None:
    """One repeat: fresh database, first sync, verify, unchanged re-sync, verify."""
    n = res.rows
    remove(c.fresh)
    say(f"[{n:,}] {LABELS[c.name]}: first sync ...")
    first = measure(c.first, log, timeout, c.env)
    res.first.append(first)
    if not first.ok:
        return
    say(f"  {first.seconds:.2f} s, {first.rss_kib / 1024:.0f} MB")
    got, why = count_rows(c.db)
    if got != n:
        res.note(why or f"{got:,} rows in {TABLE} after first sync, expected {n:,}")
    if c.name == "syncd" and (run := last_syncd_run(c.db)) and run.get("items_inserted") != n:
        res.note(f"first run reported {run}")
    say(f"[{n:,}] {LABELS[c.name]}: unchanged re-sync ...")
    again = measure(c.resync, log, timeout, c.env)
    res.resync.append(again)
    if not again.ok:
        return
    say(f"  {again.seconds:.2f} s, {again.rss_kib / 1024:.0f} MB")
    got, why = count_rows(c.db)
    if got != n:
        res.note(why or f"{got:,} rows in {TABLE} after re-sync, expected {n:,}")
    if c.name == "syncd" and (run := last_syncd_run(c.db)) and run.get("items_unchanged") != n:
        res.note(f"re-sync did not report all rows unchanged: {run}")


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """Format a figure, or '-' when there is none."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_table(n: int, results: list[Result], inherited_mb: float) -> None:
    """The per-N table."""
    floor = next((r for r in results if r.name == "floor" and r.ok), None)
    floor_s = floor.seconds("first") if floor else None
    head = (
        "contender",
        "first s",
        "rows/s",
        "x floor",
        "re-sync s",
        "re/first",
        "RSS first MB",
        "RSS re MB",
        "notes",
    )
    lines = []
    for r in results:
        first, again = r.seconds("first"), r.seconds("resync")
        if not r.ok:
            failed = next(p for p in r.first + r.resync if not p.ok) if r.first else None
            reason = failed.error if failed else "not run"
            lines.append((LABELS[r.name], "FAILED", "", "", "", "", "", "", reason))
            continue
        lines.append(
            (
                LABELS[r.name],
                fmt(first, ".2f"),
                fmt(n / first if first else None, ",.0f"),
                fmt(first / floor_s if first and floor_s else None, ".2f", "x"),
                fmt(again, ".2f"),
                fmt(again / first if again is not None and first else None, ".2f"),
                fmt(r.rss_mb("first"), ".0f"),
                fmt(r.rss_mb("resync"), ".0f"),
                "; ".join(r.notes),
            )
        )
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head) - 1)]
    print(
        f"\n{n:,} rows (median of {max((len(r.first) for r in results), default=0)}, "
        f"peak RSS = max over repeats, never below the {inherited_mb:.0f} MB inherited at spawn)"
    )
    for row in (head, *lines):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:-1], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells) + (f"  {row[-1]}" if row[-1] else ""))


def verdict(by_n: dict[int, list[Result]]) -> list[dict[str, object]]:
    """Check syncd against the targets; returns one entry per check."""
    checks: list[dict[str, object]] = []

    def check(name: str, passed: bool | None, detail: str) -> None:
        checks.append(
            {
                "check": name,
                "result": {True: "PASS", False: "FAIL", None: "N/A"}[passed],
                "detail": detail,
            }
        )

    def get(n: int, name: str) -> Result | None:
        return next((r for r in by_n[n] if r.name == name and r.ok), None)

    def compare(name: str, value: float | None, ref: float | None, limit: float) -> None:
        if value is None or not ref:
            check(name, None, "not measured (syncd or its baseline failed or was left out)")
        else:
            ratio = value / ref
            passed = ratio < limit if limit == 1.0 else ratio <= limit
            check(name, passed, f"{value:.2f} s vs {ref:.2f} s = {ratio:.2f}x")

    def seconds(n: int, name: str, phase: str = "first") -> float | None:
        r = get(n, name)
        return r.seconds(phase) if r else None

    for n in by_n:
        s_first = seconds(n, "syncd")
        compare(
            f"first sync <= {MAX_FIRST_VS_FLOOR}x floor ({n:,} rows)",
            s_first,
            seconds(n, "floor"),
            MAX_FIRST_VS_FLOOR,
        )
        compare(
            f"first sync faster than sqlite-utils insert ({n:,} rows)",
            s_first,
            seconds(n, "sqlite-utils-insert"),
            1.0,
        )
        compare(
            f"unchanged re-sync <= {MAX_RESYNC_VS_FIRST}x its first sync ({n:,} rows)",
            seconds(n, "syncd", "resync"),
            s_first,
            MAX_RESYNC_VS_FIRST,
        )

    def peak(n: int) -> float | None:
        s = get(n, "syncd") if n in by_n else None
        return max(s.rss_mb("first") or 0, s.rss_mb("resync") or 0) if s else None

    big = peak(1_000_000)
    check(
        f"peak RSS <= {MAX_RSS_MB_AT_1M:.0f} MB at 1,000,000 rows",
        None if big is None else big <= MAX_RSS_MB_AT_1M,
        "not measured (needs --rows ... 1000000)" if big is None else f"{big:.0f} MB",
    )
    lo_n, hi_n = min(by_n), max(by_n)
    lo, hi = peak(lo_n), peak(hi_n)
    if lo_n == hi_n:
        check(f"peak RSS flat (<= {MAX_RSS_GROWTH}x)", None, "needs two row counts (--rows)")
    elif lo is None or hi is None:
        check(
            f"peak RSS flat (<= {MAX_RSS_GROWTH}x from {lo_n:,} to {hi_n:,} rows)",
            None,
            "syncd not measured at both row counts",
        )
    else:
        check(
            f"peak RSS flat (<= {MAX_RSS_GROWTH}x from {lo_n:,} to {hi_n:,} rows)",
            hi <= MAX_RSS_GROWTH * lo,
            f"{lo:.0f} MB -> {hi:.0f} MB = {hi / lo:.2f}x",
        )
    return checks


def inherited_rss_mb(workdir: Path) -> float:
    """Peak RSS reported for /bin/true spawned from here: the floor under every RSS figure.

    Linux counts the RSS of the spawning process in a child's ru_maxrss (exec records the
    old address space's high-water mark), so no child can be reported below this.
    """
    true = shutil.which("true") or "/bin/true"
    proc = measure([true], workdir / "launcher.log", 60, dict(os.environ))
    return proc.rss_kib / 1024


def tool_version(cmd: list[str]) -> str:
    """First line of ``cmd``'s output, or why it could not run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if out.returncode == 0 and text else f"unavailable (exit {out.returncode})"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rows",
        nargs="+",
        type=parse_count,
        default=[100_000, 1_000_000],
        metavar="N",
        help="row counts to measure (100000, 100k, 1M; default: 100k 1M)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="repeats per contender (median; default 1)"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "syncd-bench-ingest",
        help="where CSVs (cached), databases and logs go (default: %(default)s)",
    )
    ap.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated contenders (default: {','.join(CONTENDERS)})",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--_floor", nargs=2, metavar=("CSV", "DB"), help=argparse.SUPPRESS)
    ap.add_argument("--_gen", nargs=2, metavar=("N", "CSV"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._gen:
        write_csv(int(args._gen[0]), args._gen[1])
        return 0

    if args._floor:
        floor_ingest(*args._floor)
        return 0
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if unknown := [x for x in only if x not in CONTENDERS]:
        ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    names = [c for c in CONTENDERS if c in only]
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlite_utils": tool_version([str(BIN / "sqlite-utils"), "--version"])
        if any(n.startswith("sqlite-utils") for n in names)
        else None,
        "workdir": str(workdir),
        "repeat": args.repeat,
        "load_before": os.getloadavg()[0],
    }
    meta["inherited_rss_mb"] = inherited_rss_mb(workdir)
    say(
        f"python {meta['python']}, SQLite {meta['sqlite']}, {meta['cpus']} CPUs, "
        f"{meta['sqlite_utils'] or 'sqlite-utils not run'}; workdir {workdir}"
    )

    by_n: dict[int, list[Result]] = {}
    for n in dict.fromkeys(args.rows):
        csv_path = make_csv(workdir, n)
        results = by_n[n] = [Result(name, n) for name in names]
        logs = {name: workdir / f"{name}-{n}.log" for name in names}
        for log in logs.values():
            log.write_bytes(b"")
        for _ in range(args.repeat):  # interleave contenders, so drift hits them all alike
            for res in results:
                if res.first and not res.ok:
                    continue  # failed in an earlier repeat
                c = contender(res.name, csv_path, workdir, n)
                run_contender(c, res, logs[res.name], args.timeout)
        meta["inherited_rss_mb"] = max(meta["inherited_rss_mb"], inherited_rss_mb(workdir))
        print_table(n, results, meta["inherited_rss_mb"])

    meta["load_after"] = os.getloadavg()[0]
    others = max(meta["load_before"], meta["load_after"] - 1)  # less the one contender running
    if others > 0.5:
        print(
            f"\nnote: other work was running (load average {meta['load_before']:.1f} before, "
            f"{meta['load_after']:.1f} after); figures are noisy, use --repeat"
        )
    checks = verdict(by_n) if "syncd" in names else []
    if checks:
        print("\nverdict (syncd):")
        width = max(len(str(c["check"])) for c in checks)
        for c in checks:
            print(f"  {c['result']:<4}  {c['check']:<{width}}  {c['detail']}")
    sys.stdout.flush()

    if args.json:
        data = {
            "meta": meta,
            "results": [
                {
                    "contender": r.name,
                    "rows": r.rows,
                    "ok": r.ok,
                    "first_s": r.seconds("first"),
                    "resync_s": r.seconds("resync"),
                    "first_rss_mb": r.rss_mb("first"),
                    "resync_rss_mb": r.rss_mb("resync"),
                    "runs": {ph: [vars(p) for p in getattr(r, ph)] for ph in ("first", "resync")},
                    "notes": r.notes,
                }
                for results in by_n.values()
                for r in results
            ],
            "verdict": checks,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    return 0 if all(r.ok for rs in by_n.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
