"""CSV -> SQLite ingest benchmark: syncd against baselines measured in the same run.

Every contender runs as its own subprocess, so wall time and peak RSS (``ru_maxrss`` from
``os.wait4``) belong to exactly that process. Each contender first syncs into an empty
database, then runs the same sync again on the populated database ("unchanged re-sync"),
then a copy of the file with 1 % of the titles changed ("1 % re-sync"). The bulk-path
anchors (sqlite3 CLI, PostgreSQL COPY, MariaDB LOAD DATA) and the servers live in
bench/ingest_bulk.py.

    .venv/bin/python bench/ingest.py [--rows 100000 1000000] [--big] [--repeat 1]
                                     [--only floor,syncd,...] [--workdir DIR] [--json FILE]

See bench/README.md for what each contender does and how the verdict is reached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ingest_bulk
import ingest_sqlite
from ingest_bulk import TABLE, Contender
from ingest_data import CHANGED_EVERY, make_csv, parse_count
from ingest_report import (
    CONTENDERS,
    LABELS,
    PHASE_LABEL,
    PHASES,
    SYNCD_ON,
    Result,
    print_table,
    verdict,
)
from ingest_run import Proc, inherited_rss_mb, measure, say, tool_version
from ingest_sqlite import remove, sqlite_hooks
from ingest_table import TABLE_ANCHORS, table_anchor

BIN = Path(sys.executable).parent
BIG = 10_000_000  # added to --rows by --big
SLOW_ABOVE_1M = ("sqlite-utils-insert", "sqlite-utils-upsert")  # left out above 1M unless --only

SYNCD_CONFIG = """\
[daemon]
state_dir = "{state_dir}"
log_format = "json"
{database}

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



def contender(
    name: str, csv_path: Path, changed: Path, workdir: Path, n: int, bases: dict[str, str]
) -> Contender:
    """Build the commands of one contender for one CSV (and its 1 %-changed copy)."""
    if name in ingest_bulk.ANCHORS:
        return ingest_bulk.anchor(name, csv_path, workdir, n, bases)
    if name in TABLE_ANCHORS:

        def config_for(url: str) -> Path:
            conf = workdir / f"{name}.toml"
            conf.write_text(SYNCD_CONFIG.format(state_dir=toml_str(workdir / f"{name}-state"),
                                                database=f'database = "{url}"'),
                            encoding="utf-8")
            remove([workdir / f"{name}-state"])
            return conf

        sync = [str(BIN / "syncd"), "sync", "music"]
        return table_anchor(name, csv_path, workdir, n, bases, sync, config_for)
    if name == "floor":
        db = workdir / f"floor-{n}.db"
        cmd = [sys.executable, ingest_sqlite.HERE, "--_floor", str(csv_path), str(db)]
        return Contender(name, cmd, cmd, [*cmd[:-2], str(changed), str(db)], *sqlite_hooks(db))
    if name.startswith("sqlite-utils-"):
        db = workdir / f"{name}-{n}.db"
        tool = str(BIN / "sqlite-utils")
        args = [str(db), TABLE, str(csv_path), "--csv", "--pk", "id"]
        first = [tool, name.removeprefix("sqlite-utils-"), *args]
        return Contender(name, first, [tool, "upsert", *args], None, *sqlite_hooks(db))
    kind = SYNCD_ON[name]
    state_dir = workdir / f"{name}-state"
    conf = workdir / f"{name}.toml"
    database = ""
    if kind:
        url = ingest_bulk.db_url(bases[kind], ingest_bulk.SERVER_DB[name])
        database = f'database = "{url}"'
    text = SYNCD_CONFIG.format(state_dir=toml_str(state_dir), database=database)
    conf.write_text(text, encoding="utf-8")
    cmd = [str(BIN / "syncd"), "sync", "music", "--file", str(csv_path), "--config", str(conf)]
    env = dict(os.environ, SYNCD_CONFIG=str(conf))
    changed_cmd = [*cmd[:4], str(changed), *cmd[5:]]
    if kind:
        prepare, inspect = ingest_bulk.server_hooks(name, kind, bases[kind])

        def prepare_both() -> str:
            remove([state_dir])
            return prepare()

        return Contender(name, cmd, cmd, changed_cmd, prepare_both, inspect, env)
    prepare, inspect = sqlite_hooks(state_dir / "syncd.db", [state_dir])
    return Contender(name, cmd, cmd, changed_cmd, prepare, inspect, env)



def toml_str(path: Path) -> str:
    """A path as the inside of a TOML basic string."""
    return str(path).replace("\\", "\\\\").replace('"', '\\"')




# --------------------------------------------------------------------------- results


def run_contender(c: Contender, res: Result, log: Path, timeout: float) -> None:
    """One repeat: fresh database, then each phase, each followed by a check of the table."""
    n = res.rows
    res.phases = tuple(ph for ph in PHASES if getattr(c, ph) is not None)
    if why := c.prepare():
        res.first.append(Proc(False, 0.0, 0, 0.0, 0.0, f"cannot prepare its database: {why}"))
        say(f"  FAILED: {LABELS[c.name]}: cannot prepare its database: {why}")
        return
    expect = {"first": ("items_inserted", n), "resync": ("items_unchanged", n)}
    expect["changed"] = ("items_updated", n // CHANGED_EVERY)
    for phase in res.phases:
        say(f"[{n:,}] {LABELS[c.name]}: {PHASE_LABEL[phase]} ...")
        proc = measure(getattr(c, phase), log, timeout, c.env)
        getattr(res, phase).append(proc)
        if not proc.ok:
            return
        say(f"  {proc.seconds:.2f} s, {proc.rss_kib / 1024:.0f} MB")
        rows, why, run = c.inspect()
        if rows != n:
            res.note(why or f"{rows:,} rows in {TABLE} after {PHASE_LABEL[phase]}, expected {n:,}")
        key, want = expect[phase]
        if c.name in SYNCD_ON and run and run.get(key) != want:
            res.note(f"{PHASE_LABEL[phase]}: expected {key} = {want:,}, run reported {run}")
        if run and "bulk_path" in run:
            res.note(str(run["bulk_path"]))


# --------------------------------------------------------------------------- main


def servers_down(
    names: list[str], bases: dict[str, str], meta: dict[str, Any]
) -> dict[str, str]:
    """Ping each server a selected contender needs: {kind: why it is skipped} for those down."""
    down = {}
    for kind, label in ingest_bulk.SERVERS.items():
        users = [name for name in names if ingest_bulk.server_of(name) == kind]
        if not users:
            continue
        got = ingest_bulk.admin("ping", kind, bases[kind])
        meta[kind] = got.get("version") or f"down: {got.get('error')}"
        if "error" in got:
            where = bases[kind].split("@")[-1].rsplit("/", 1)[0]
            down[kind] = f"{', '.join(users)}: {label} at {where} is down ({got['error']})"
    return down


def measure_n(
    n: int,
    names: list[str],
    args: argparse.Namespace,
    workdir: Path,
    bases: dict[str, str],
    down: dict[str, str],
    meta: dict[str, Any],
) -> list[Result]:
    """Every contender at N rows, repeats interleaved; prints and returns the table's rows."""
    csv_path, changed = make_csv(workdir, n), make_csv(workdir, n, changed=True)
    results = [Result(name, n) for name in names]
    for res in results:
        if kind := ingest_bulk.server_of(res.name):
            res.skipped = down.get(kind, "").split(": ", 1)[-1]
        if res.name in SLOW_ABOVE_1M and n > 1_000_000 and "--only" not in sys.argv:
            res.skipped = "left out above 1M rows (hours); name it in --only to run it"
    logs = {name: workdir / f"{name}-{n}.log" for name in names}
    for log in logs.values():
        log.write_bytes(b"")
    for _ in range(args.repeat):  # interleave contenders, so drift hits them all alike
        for res in results:
            if res.skipped or (res.first and not res.ok):
                continue  # skipped, or failed in an earlier repeat
            c = contender(res.name, csv_path, changed, workdir, n, bases)
            run_contender(c, res, logs[res.name], args.timeout)
    meta["inherited_rss_mb"] = max(meta["inherited_rss_mb"], inherited_rss_mb(workdir))
    print_table(n, results, meta["inherited_rss_mb"])
    return results


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
    ap.add_argument("--big", action="store_true", help=f"also measure {BIG:,} rows")
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
    for kind, label in ingest_bulk.SERVERS.items():
        ap.add_argument(
            f"--{kind}",
            default=ingest_bulk.DEFAULT_URLS[kind],
            metavar="URL",
            help=f"{label} server; its database is only used to create and drop "
            "syncd_bench_* (default: %(default)s)",
        )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    args = ap.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if unknown := [x for x in only if x not in CONTENDERS]:
        ap.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    names = [c for c in CONTENDERS if c in only]
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlite3_cli": tool_version(["sqlite3", "--version"]) if "sqlite3-cli" in names else None,
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

    bases = {kind: getattr(args, kind) for kind in ingest_bulk.SERVERS}
    down = servers_down(names, bases, meta)
    for line in down.values():
        print(f"skipped: {line}")
    by_n: dict[int, list[Result]] = {}
    try:
        for n in dict.fromkeys([*args.rows, *([BIG] if args.big else [])]):
            by_n[n] = measure_n(n, names, args, workdir, bases, down, meta)
    finally:
        for name in names:
            if (server := ingest_bulk.server_of(name)) and server not in down:
                ingest_bulk.admin("drop", server, bases[server], ingest_bulk.SERVER_DB[name])

    meta["load_after"] = os.getloadavg()[0]
    others = max(meta["load_before"], meta["load_after"] - 1)  # less the one contender running
    if others > 0.5:
        print(
            f"\nnote: other work was running (load average {meta['load_before']:.1f} before, "
            f"{meta['load_after']:.1f} after); figures are noisy, use --repeat"
        )
    checks = verdict(by_n) if set(names) & set(SYNCD_ON) else []
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
                    "changed_s": r.seconds("changed"),
                    "first_rss_mb": r.rss_mb("first"),
                    "resync_rss_mb": r.rss_mb("resync", "changed"),
                    "runs": {ph: [vars(p) for p in getattr(r, ph)] for ph in PHASES},
                    "skipped": r.skipped,
                    "notes": r.notes,
                }
                for results in by_n.values()
                for r in results
            ],
            "verdict": checks,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    return 0 if all(r.ok or r.skipped for rs in by_n.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
