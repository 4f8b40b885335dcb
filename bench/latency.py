"""Watched folder: drop -> completed latency, and a burst of 1,000 small files.

The script starts ``syncd run`` as a subprocess (config, state and inbox in a work
directory, the API on a free port of 127.0.0.1, USB off) with one job, ``music``: CSV ->
``content_index``, fed by ``[jobs.music.watch]`` on ``WORKDIR/inbox`` (``*.csv``, archived
after the run). It follows ``GET /v1/events`` (server-sent events) throughout.

1. **latency**: one unrecorded warm-up drop, then two series of ``--drops`` CSV files of
   ``--rows`` rows, one file at a time. Each is written under a temporary hidden name in
   the inbox and renamed into place with ``os.rename``; the latency runs from just before
   the rename until the ``run_finished`` event of its run arrives. The run is checked
   (``GET /v1/sync/{id}``: completed, trigger ``watch``, that file, every row inserted) and
   the file must have left the inbox (archived) before the next drop. In the *isolated*
   series the next drop waits ``--gap`` seconds more; in the *back-to-back* series it
   follows at once. (watchdog holds an unmatched inotify IN_MOVED_FROM, such as the
   archiving move into ``processed/``, for 0.5 s at the head of its event queue, so a file
   dropped within 0.5 s of the previous archive waits that long to be seen.)
2. **burst**: ``--burst`` files of ``--burst-rows`` rows are written under temporary names,
   then all renamed into place at once; the clock runs until the last of their runs has
   finished. Then the store is checked directly (SQLite in the state dir): exactly one
   completed ``watch`` run per file, each file once in ``ingested_files``, and every row
   once in ``content_index``.

Every file has distinct content (ids carry the file's number), so none is skipped as
already ingested. Prints p50/p95 latency, burst files/s, the checks, and a verdict against
"drop -> completed p50 under 300 ms".

    .venv/bin/python bench/latency.py [--drops 20] [--rows 1000] [--burst 1000]
                                      [--burst-rows 10] [--gap 1] [--workdir DIR]
                                      [--timeout 900] [--json FILE]
                                      [--isolate-runs auto|true|false]

``--isolate-runs true`` runs every sync in a worker process: what that costs a small
file (the daemon's default, ``auto``, keeps these in threads).

Exit status: 0 when both phases ran and every check passed; the verdict does not change it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from daemonkit import (
    BenchError,
    Daemon,
    free_port,
    iso_time,
    isolate_value,
    say,
    toml_str,
    wait_healthy,
)
from events import Event, Events, api_get
from latency_report import SERIES, Drop, Outcome, report, verify

BIN = Path(sys.executable).parent
JOB = "music"
HEALTH_TIMEOUT = 60.0  # seconds for the daemon to answer GET /v1/health
DROP_TIMEOUT = 60.0  # seconds for one dropped file's run to finish
ARCHIVE_TIMEOUT = 30.0  # seconds for a finished file to leave the inbox
STOP_TIMEOUT = 60.0  # seconds for the daemon to exit after SIGTERM
REQUEST_TIMEOUT = 30.0
LOG_TAIL_LINES = 25

CONFIG = """\
[daemon]
state_dir = "{state_dir}"
log_format = "json"
isolate_runs = {isolate}

[api]
listen = "127.0.0.1:{port}"

[usb]
enabled = false

[jobs.{job}.source]
type = "csv"

[jobs.{job}.target]
type = "sql"
table = "content_index"
key = ["external_id"]

[jobs.{job}.mapping]
external_id = "id"
title = "song_name"
artist = "artist_name"
genre = "music_genre"

[jobs.{job}.constants]
content_type = "music"

[jobs.{job}.watch]
path = "{inbox}"
patterns = ["*.csv"]
after = "archive"
"""


def write_csv(path: Path, tag: str, rows: int) -> None:
    """A CSV of ``rows`` rows whose ids (and so content) are unique to ``tag``."""
    lines = ["id,song_name,artist_name,music_genre"]
    lines += [f"{tag}-{r:05d},Song {r} of {tag},Artist {r % 97},genre{r % 13}" for r in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- API


def finished(event: Event) -> bool:
    return event.kind == "run_finished" and event.data.get("job") == JOB


async def gone(path: Path, timeout: float) -> bool:
    """Wait for ``path`` to leave the inbox; False on timeout."""
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# --------------------------------------------------------------------------- phases




async def drop_one(
    session: aiohttp.ClientSession,
    base: str,
    events: Events,
    inbox: Path,
    name: str,
    rows: int,
    series: str = "",
) -> Drop:
    """Drop one file by rename and wait for its run to finish; checks the run."""
    temp, final = inbox / f".{name}.part", inbox / name
    write_csv(temp, name.removesuffix(".csv"), rows)
    events.drain()
    wall0 = time.time()
    t0 = time.perf_counter()
    os.rename(temp, final)
    try:
        event = await events.next(finished, DROP_TIMEOUT)
    except TimeoutError:
        raise BenchError(
            f"{name}: no run finished within {DROP_TIMEOUT:.0f} s of the drop "
            "(is the watch trigger running?)"
        ) from None
    latency = (event.at - t0) * 1000
    run_id = event.data["runId"]
    run = await api_get(session, f"{base}/v1/sync/{run_id}")
    problems = []
    if run.get("status") != "completed":
        problems.append(f"status {run.get('status')} ({run.get('errorMessage')})")
    if run.get("trigger") != "watch":
        problems.append(f"trigger {run.get('trigger')}")
    if run.get("sourceIdentifier") != str(final):
        problems.append(f"source {run.get('sourceIdentifier')}")
    if run.get("itemsInserted") != rows:
        problems.append(f"{run.get('itemsInserted')} inserted")
    if problems:
        raise BenchError(f"{name}: run {run_id}: {', '.join(problems)}")
    if not await gone(final, ARCHIVE_TIMEOUT):
        raise BenchError(f"{name} still in the inbox {ARCHIVE_TIMEOUT:.0f} s after its run")
    created, completed = iso_time(run.get("createdAt")), iso_time(run.get("completedAt"))
    return Drop(
        series,
        name,
        int(run_id),
        latency,
        None if created is None else (created - wall0) * 1000,
        None if created is None or completed is None else (completed - created) * 1000,
        None if completed is None else (event.wall - completed) * 1000,
    )


async def latency_phase(
    session: aiohttp.ClientSession,
    base: str,
    events: Events,
    inbox: Path,
    args: argparse.Namespace,
    out: Outcome,
) -> None:
    warm = await drop_one(session, base, events, inbox, "warmup.csv", args.rows)
    out.warmup_ms = warm.latency_ms
    say(f"warm-up drop: {warm.latency_ms:.0f} ms (not counted)")
    for series, gap in zip(SERIES, (args.gap, 0.0), strict=True):
        say(f"{series} drops ({gap:g} s after the previous file left the inbox):")
        for i in range(args.drops):
            await asyncio.sleep(gap)
            drop = await drop_one(
                session, base, events, inbox, f"{series}-{i:03d}.csv", args.rows, series
            )
            out.drops.append(drop)
            say(f"  {i + 1:>3}/{args.drops}: {drop.latency_ms:7.1f} ms  (run {drop.run_id})")


async def burst_phase(events: Events, inbox: Path, args: argparse.Namespace, out: Outcome) -> None:
    names = [f"burst-{i:05d}.csv" for i in range(args.burst)]
    for name in names:
        write_csv(inbox / f".{name}.part", name.removesuffix(".csv"), args.burst_rows)
    say(f"burst: {args.burst:,} files written under temporary names; renaming all ...")
    events.drain()
    done: set[int] = set()
    t0 = time.perf_counter()
    for name in names:
        os.rename(inbox / f".{name}.part", inbox / name)
    out.burst_renames_ms = (time.perf_counter() - t0) * 1000
    last = t0
    deadline = time.monotonic() + args.timeout
    next_report = time.monotonic() + 5
    while len(done) < args.burst:
        left = deadline - time.monotonic()
        try:
            event = await events.next(finished, max(0.0, min(left, 5.0)))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise BenchError(
                    f"burst: {len(done):,} of {args.burst:,} runs finished within "
                    f"{args.timeout:.0f} s"
                ) from None
            continue
        if event.data.get("status") != "completed":
            raise BenchError(
                f"burst: run {event.data.get('runId')} ended "
                f"{event.data.get('status')}: {event.data.get('error')}"
            )
        done.add(int(event.data["runId"]))
        last = event.at
        if time.monotonic() >= next_report:
            next_report += 5
            say(f"  {len(done):,} runs finished after {last - t0:.1f} s")
    out.burst_seconds = last - t0
    out.burst_events = len(done)


async def measure(
    base: str, daemon: Daemon, inbox: Path, db_path: Path, args: argparse.Namespace, out: Outcome
) -> None:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_healthy(session, base, daemon)
        say("daemon is up; following /v1/events")
        events = Events()
        follower = asyncio.create_task(events.follow(session, base + "/v1/events"))
        try:
            await asyncio.wait_for(asyncio.shield(events.connected.wait()), 10)
        except TimeoutError:
            follower.cancel()
            raise BenchError("GET /v1/events sent nothing within 10 s") from None
        try:
            if args.drops:
                say(f"latency: {args.drops} drops of {args.rows:,}-row CSV files ...")
                await latency_phase(session, base, events, inbox, args, out)
            if args.burst:
                await burst_phase(events, inbox, args, out)
                say("checking the store ...")
                # the last runs' files are archived after their run_finished event
                for path in sorted(inbox.glob("burst-*.csv")):
                    await gone(path, ARCHIVE_TIMEOUT)
                verify(db_path, JOB, inbox, args, out)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, BenchError, aiohttp.ClientError):
                await follower


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drops", type=int, default=20, help="measured drops (default 20)")
    ap.add_argument("--rows", type=int, default=1000, help="rows per dropped file (1000)")
    ap.add_argument(
        "--gap",
        type=float,
        default=1.0,
        help="seconds between isolated drops, after the previous file left the inbox (default 1)",
    )
    ap.add_argument("--burst", type=int, default=1000, help="files dropped at once (1000)")
    ap.add_argument("--burst-rows", type=int, default=10, help="rows per burst file (10)")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "syncd-bench-latency",
        help="config, state and inbox (wiped first), daemon log (default: %(default)s)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds for every burst run to finish (default 900)",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--isolate-runs", choices=("auto", "true", "false"), default="auto",
                    help="[daemon] isolate_runs: whether each sync runs in a worker process "
                    "(default: auto, the daemon's default)")
    args = ap.parse_args(argv)
    if min(args.drops, args.burst, args.gap) < 0 or min(args.rows, args.burst_rows) < 1:
        ap.error("--drops, --burst and --gap must be >= 0, --rows and --burst-rows >= 1")

    workdir: Path = args.workdir.resolve()
    state_dir, inbox = workdir / "state", workdir / "inbox"
    for path in (state_dir, inbox):
        shutil.rmtree(path, ignore_errors=True)
    inbox.mkdir(parents=True)
    port = free_port()
    config = workdir / "syncd.toml"
    config.write_text(
        CONFIG.format(job=JOB, state_dir=toml_str(state_dir), port=port, inbox=toml_str(inbox),
                      isolate=isolate_value(args.isolate_runs)),
        encoding="utf-8",
    )
    log_path = workdir / "daemon.log"
    log_path.write_bytes(b"")
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "workdir": str(workdir),
        "load_before": os.getloadavg()[0],
    }
    say(f"python {meta['python']}, {meta['cpus']} CPUs; workdir {workdir}")

    out = Outcome()
    daemon = Daemon(config, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        daemon.start()
        say(f"started syncd run (pid {daemon.proc.pid if daemon.proc else '?'}) on {base}")
        asyncio.run(measure(base, daemon, inbox, state_dir / "syncd.db", args, out))
    except BenchError as exc:
        out.failure = str(exc)
        say(f"  FAILED: {exc}\n  --- daemon log tail ({log_path}) ---")
        for line in daemon.tail():
            say(f"  | {line}")
    finally:
        out.daemon_exit = daemon.stop()
    if out.daemon_exit != 0:
        out.notes.append(f"syncd run exited with {out.daemon_exit} after SIGTERM, expected 0")
    if meta["load_before"] > 0.5:
        out.notes.append(
            f"other work was running (load average {meta['load_before']:.1f} "
            "before the start); the figures are noisy"
        )
    figures = report(out, args)
    if args.json:
        data = {
            "meta": meta,
            "figures": figures,
            "drops": [vars(d) for d in out.drops],
            "notes": out.notes,
            "failure": out.failure or None,
            "daemon_exit": out.daemon_exit,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    ok = not out.failure and out.daemon_exit == 0 and all(c[1] for c in out.checks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
