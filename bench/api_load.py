"""Control API under load: ``GET /v1/sync/stats`` idle, then while a 1M-row CSV sync runs.

The script starts ``syncd run`` as a subprocess (its own config, state and port in a work
directory), drives ``GET /v1/sync/stats`` with concurrent aiohttp clients for a fixed time
while the daemon is idle, then triggers a CSV -> SQL sync through ``POST /v1/sync/trigger``
and repeats the same load while the run is in progress. Requests/s and latency
percentiles of both phases are printed side by side, with their ratios and a verdict.

    .venv/bin/python bench/api_load.py [--seconds 10] [--clients 16] [--rows 1M]
                                       [--workdir DIR] [--json FILE]

See bench/README.md for what is measured and how the verdict is reached.
"""

from __future__ import annotations

import argparse
import asyncio
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
from api_load_report import Outcome, as_int, print_table, verdict
from api_phase import STATS, load
from daemonkit import BenchError, Daemon, free_port, iso_time, isolate_value, say, toml_str
from ingest_data import CSV_VERSION, make_csv, parse_count

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
LOG_TAIL_LINES = 25

HEALTH_TIMEOUT = 60.0  # seconds for the daemon to answer GET /v1/health
START_TIMEOUT = 60.0  # seconds for a triggered run to reach in_progress
STOP_TIMEOUT = 60.0  # seconds for the daemon to exit after SIGTERM
WARMUP_SECONDS = 1.0  # unrecorded load before the idle phase (connections, caches)
REQUEST_TIMEOUT = 30.0  # a request taking longer counts as an error

CONFIG = """\
[daemon]
state_dir = "{state_dir}"
log_format = "json"
isolate_runs = {isolate}

[api]
listen = "127.0.0.1:{port}"

[usb]
enabled = false

[jobs.music.source]
type = "csv"
path = "{csv}"

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


# --------------------------------------------------------------------------- data


def csv_for(workdir: Path, n: int) -> Path:
    """The N-row CSV: ingest.py's cached one when present, else generated into workdir."""
    name = f"music-v{CSV_VERSION}-{n}.csv"
    cached = Path(tempfile.gettempdir()) / "syncd-bench-ingest" / name
    if cached.is_file():
        say(f"reusing {cached}")
        return cached
    return make_csv(workdir, n)
# --------------------------------------------------------------------------- API


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: object = None
) -> tuple[int, Any]:
    """One API call; the HTTP status and the decoded JSON body (None when not JSON)."""
    async with session.request(method, url, json=body) as resp:
        text = await resp.text()
    try:
        return resp.status, json.loads(text)
    except ValueError:
        return resp.status, None


def data_of(status: int, body: Any, what: str, expect: int = 200) -> Any:
    """The ``data`` of a success envelope, or BenchError saying what came back instead."""
    if status == expect and isinstance(body, dict) and body.get("success") is True:
        return body.get("data")
    shown = json.dumps(body)[:300] if body is not None else "(not JSON)"
    raise BenchError(f"{what}: expected HTTP {expect} and a success envelope, got {status} {shown}")


async def wait_healthy(session: aiohttp.ClientSession, base: str, daemon: Daemon) -> Any:
    """Poll ``GET /v1/health`` until it answers 200; returns its data."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if (code := daemon.exited()) is not None:
            raise BenchError(f"syncd run exited with code {code} before answering /v1/health")
        try:
            status, body = await call(session, "GET", base + "/v1/health")
        except (TimeoutError, aiohttp.ClientError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                return body.get("data") if isinstance(body, dict) else body
            last = f"HTTP {status}"
        await asyncio.sleep(0.1)
    raise BenchError(f"GET /v1/health did not answer 200 within {HEALTH_TIMEOUT:.0f} s ({last})")


async def get_run(session: aiohttp.ClientSession, base: str, run_id: int) -> dict[str, Any]:
    """``GET /v1/sync/{id}`` data."""
    status, body = await call(session, "GET", f"{base}/v1/sync/{run_id}")
    run = data_of(status, body, f"GET /v1/sync/{run_id}")
    if not isinstance(run, dict):
        raise BenchError(f"GET /v1/sync/{run_id}: data is not an object: {run!r}")
    return run


async def wait_status(
    session: aiohttp.ClientSession,
    base: str,
    run_id: int,
    leave: tuple[str, ...],
    timeout: float,
    interval: float,
) -> dict[str, Any]:
    """Poll the run until its status is not in ``leave``; the run, or BenchError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        run = await get_run(session, base, run_id)
        if run.get("status") not in leave:
            return run
        if time.monotonic() >= deadline:
            raise BenchError(
                f"run {run_id} still {run.get('status')} after {timeout:.0f} s "
                f"({run.get('itemsProcessed')} items processed)"
            )
        await asyncio.sleep(interval)


async def measure(args: argparse.Namespace, base: str, daemon: Daemon, out: Outcome) -> None:
    """Idle phase, trigger, busy phase, wait for the run to finish."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=args.clients + 4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
        health = await wait_healthy(s, base, daemon)
        say(f"daemon is up: {json.dumps(health)[:200]}")
        status, body = await call(s, "GET", base + STATS)
        say(f"GET {STATS}: {json.dumps(data_of(status, body, 'GET ' + STATS))[:200]}")

        await load(s, base + STATS, "warm-up", args.clients, WARMUP_SECONDS, daemon)
        say(f"idle: {args.clients} clients for {args.seconds:g} s ...")
        out.idle = await load(s, base + STATS, "idle", args.clients, args.seconds, daemon)
        say(f"  {out.idle.rps:,.0f} req/s, p99 {out.idle.percentile(99) or 0:.1f} ms")

        status, body = await call(s, "POST", base + "/v1/sync/trigger", {"job": "music"})
        data = data_of(status, body, "POST /v1/sync/trigger", expect=202)
        run_id = data.get("syncRunId") if isinstance(data, dict) else None
        if not isinstance(run_id, int):
            raise BenchError(f"POST /v1/sync/trigger: no integer data.syncRunId in {body!r}")
        say(f"triggered run {run_id}; waiting for it to be in_progress ...")
        run = await wait_status(s, base, run_id, ("pending",), START_TIMEOUT, 0.02)
        if run.get("status") != "in_progress":
            raise BenchError(f"run {run_id} went {run.get('status')} before any load: {run}")
        before = as_int(run.get("itemsProcessed"))

        say(f"during sync: {args.clients} clients for {args.seconds:g} s ...")
        out.busy = await load(s, base + STATS, "during sync", args.clients, args.seconds, daemon)
        say(f"  {out.busy.rps:,.0f} req/s, p99 {out.busy.percentile(99) or 0:.1f} ms")
        load_end = time.time()
        run = await get_run(s, base, run_id)
        out.processed_during = (before, as_int(run.get("itemsProcessed")))
        out.overlap_seconds = out.busy.seconds
        if run.get("status") != "in_progress":
            done = iso_time(run.get("completedAt"))
            if done is not None:
                out.overlap_seconds = max(0.0, min(done, load_end) - out.busy.started_at)
            shown = "?" if done is None else f"{out.overlap_seconds:.1f}"
            out.note(
                f"the sync finished ({run.get('status')}) before the load did: only {shown} s "
                f"of the {out.busy.seconds:.1f} s 'during sync' window overlapped the sync, so "
                "those figures are partly idle; use a shorter --seconds or more --rows"
            )

        say(f"waiting up to {args.timeout:.0f} s for run {run_id} to finish ...")
        run = await wait_status(s, base, run_id, ("pending", "in_progress"), args.timeout, 0.5)
        out.run = run
        started, completed = iso_time(run.get("startedAt")), iso_time(run.get("completedAt"))
        if started is not None and completed is not None:
            out.sync_seconds = completed - started
        if run.get("status") != "completed":
            out.note(f"run {run_id} ended {run.get('status')}: {json.dumps(run)[:400]}")
        elif as_int(run.get("itemsInserted")) != args.rows:
            out.note(f"run {run_id} inserted {run.get('itemsInserted')} items, not {args.rows:,}")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="load per phase (default 10)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    ap.add_argument(
        "--rows",
        type=parse_count,
        default=1_000_000,
        metavar="N",
        help="CSV rows the sync reads (1000000, 1M, 100k; default 1M)",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "syncd-bench-api",
        help="config, state (wiped first), CSV if not cached, daemon log (default: %(default)s)",
    )
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    ap.add_argument(
        "--timeout", type=float, default=900, help="seconds for the sync to finish (default 900)"
    )
    ap.add_argument("--isolate-runs", choices=("auto", "true", "false"), default="auto",
                    help="[daemon] isolate_runs: whether the sync runs in a worker process "
                    "(default: auto, the daemon's default)")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        ap.error("--clients and --seconds must be positive")

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    shutil.rmtree(state_dir, ignore_errors=True)  # a fresh database: the sync is a first sync
    csv_path = csv_for(workdir, args.rows)
    port = free_port()
    config = workdir / "syncd.toml"
    config.write_text(
        CONFIG.format(state_dir=toml_str(state_dir), port=port, csv=toml_str(csv_path),
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
        "aiohttp": aiohttp.__version__,
        "workdir": str(workdir),
        "csv": str(csv_path),
        "rows": args.rows,
        "isolate_runs": args.isolate_runs,
        "clients": args.clients,
        "seconds": args.seconds,
        "load_before": os.getloadavg()[0],
    }
    say(
        f"python {meta['python']}, aiohttp {meta['aiohttp']}, {meta['cpus']} CPUs "
        f"(shared by the daemon and this load generator); workdir {workdir}"
    )

    out = Outcome()
    daemon = Daemon(config, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        daemon.start()
        say(f"started syncd run (pid {daemon.proc.pid if daemon.proc else '?'}) on {base}")
        asyncio.run(measure(args, base, daemon, out))
    except BenchError as exc:
        out.failure = str(exc)
        say(f"  FAILED: {exc}\n  --- daemon log tail ({log_path}) ---")
        for line in daemon.tail():
            say(f"  | {line}")
    finally:
        out.daemon_exit = daemon.stop()
    if daemon.proc is not None and out.daemon_exit != 0:
        out.note(f"syncd run exited with {out.daemon_exit} after SIGTERM, expected 0")
        if not out.failure:
            for line in daemon.tail():
                say(f"  | {line}")
    meta["load_after"] = os.getloadavg()[0]

    print_table(out, args)
    if meta["load_before"] > 0.5:
        out.notes.append(
            f"other work was running (load average {meta['load_before']:.1f} before the start); "
            "the figures are noisy, run again on a quiet machine"
        )
    for text in out.notes:
        print(f"note: {text}")
    if out.failure:
        print(f"FAILED: {out.failure} (daemon log: {log_path})")
    checks = verdict(out)
    print("\nverdict:")
    width = max(len(c["check"]) for c in checks)
    for c in checks:
        print(f"  {c['result']:<4}  {c['check']:<{width}}  {c['detail']}")
    sys.stdout.flush()

    if args.json:
        data = {
            "meta": meta,
            "phases": [ph.figures() for ph in (out.idle, out.busy) if ph is not None],
            "sync": {
                "run": out.run,
                "seconds": out.sync_seconds,
                "processed_during_load": out.processed_during,
                "overlap_seconds": out.overlap_seconds,
            },
            "daemon_exit": out.daemon_exit,
            "notes": out.notes,
            "failure": out.failure or None,
            "verdict": checks,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    ok = not out.failure and out.daemon_exit == 0 and out.run.get("status") == "completed"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
