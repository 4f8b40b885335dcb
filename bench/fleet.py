"""Runs per second claimed and completed by 1, 2 and 3 daemons on one PostgreSQL
database, beside one daemon on SQLite, and the takeover time after kill -9.

    .venv/bin/python bench/fleet.py [--runs 300] [--lease 2] [--json FILE]

Each configuration gets fresh state dirs (and a fresh database ``syncd_bench_<random>``
on ``--pg``, dropped after). ``--runs`` small CSV files (20 rows each) are triggered
over the daemons' APIs, round-robin; the figures come from the store's own timestamps:
the claim latency is ``started_at - created_at`` of each run, the throughput is runs
over the time from the first trigger to the last completion.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg2

SYNCD = str(Path(sys.executable).with_name("syncd"))
JOB = """
[jobs.music]
batch_rows = {batch}
[jobs.music.source]
type = "csv"
[jobs.music.target]
type = "sql"
table = "content_index"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


class Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(sock: Path, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = Unix(str(sock))
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None,
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not within {timeout}s")
        time.sleep(0.02)
    return value


class Fleet:
    def __init__(self, root: Path, count: int, url: str, lease: float, batch: int) -> None:
        self.root, self.url = root, url
        self.shared = root / "shared"
        self.shared.mkdir(parents=True)
        self.socks: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        for i in range(count):
            home = root / f"d{i}"
            home.mkdir()
            sock = Path(tempfile.mkdtemp(prefix="syncd-bf-", dir="/tmp")) / "api.sock"
            fleet = (f"[fleet]\nenabled = true\nlease_seconds = {lease}\npoll_seconds = 0.2\n"
                     f"shared_paths = [{json.dumps(str(self.shared))}]\n") if url else ""
            (home / "syncd.toml").write_text(
                f"[daemon]\nstate_dir = {json.dumps(str(home / 'state'))}\n"
                f"database = {json.dumps(url)}\nhost = \"d{i}\"\nlog_format = \"json\"\n"
                f"{fleet}[usb]\nenabled = false\n[api]\n"
                f"listen = {json.dumps('unix:' + str(sock))}\n"
                f"allowed_paths = [{json.dumps(str(self.shared))}]\n" + JOB.format(batch=batch))
            env = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
            with (home / "syncd.log").open("ab") as log:
                self.procs.append(subprocess.Popen(
                    [SYNCD, "run", "--config", str(home / "syncd.toml")], stdout=log,
                    stderr=log, stdin=subprocess.DEVNULL, env=env))
            self.socks.append(sock)
        for sock in self.socks:
            wait(lambda s=sock: s.exists() and self._up(s), 60, "daemon start")

    @staticmethod
    def _up(sock: Path) -> bool:
        try:
            return api(sock, "GET", "/v1/health")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def runs_table(fleet: Fleet, sqlite: bool) -> list[tuple[Any, ...]]:
    sql = ("SELECT id, status, created_at, started_at, completed_at, claimed_by "
           "FROM sync_runs ORDER BY id")
    if sqlite:
        import sqlite3

        con = sqlite3.connect(fleet.root / "d0" / "state" / "syncd.db")
        try:
            return [tuple(r) for r in con.execute(sql)]
        finally:
            con.close()
    conn = psycopg2.connect(fleet.url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def stamp(value: Any) -> float:
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return float(value.timestamp())


def throughput(root: Path, count: int, url: str, runs: int, lease: float) -> dict[str, Any]:
    fleet = Fleet(root, count, url, lease, batch=100)
    try:
        files = []
        for k in range(runs):
            path = fleet.shared / f"p{k:04d}.csv"
            path.write_text("id,song_name\n" + "".join(f"{k}-{i},s\n" for i in range(20)))
            files.append(path)
        began = time.time()
        for k, path in enumerate(files):
            status, answer = api(fleet.socks[k % count], "POST", "/v1/sync/trigger",
                                 {"job": "music", "sourceIdentifier": str(path)})
            if status != 202:
                raise SystemExit(f"bench: trigger answered {status}: {answer}")
        sqlite = not url
        wait(lambda: all(r[1] == "completed" for r in runs_table(fleet, sqlite))
             and len(runs_table(fleet, sqlite)) == runs, 600, "all runs completed")
        table = runs_table(fleet, sqlite)
        done = max(stamp(r[4]) for r in table)
        latency = [stamp(r[3]) - stamp(r[2]) for r in table]
        hosts: dict[str, int] = {}
        for r in table:
            host = str(r[5]).rpartition(":")[0]
            hosts[host] = hosts.get(host, 0) + 1
        return {"daemons": count, "store": "postgresql" if url else "sqlite", "runs": runs,
                "seconds": round(done - began, 2),
                "runs_per_s": round(runs / (done - began), 1),
                "claim_latency_ms_median": round(statistics.median(latency) * 1000, 1),
                "claim_latency_ms_p95": round(sorted(latency)[int(len(latency) * .95)] * 1000,
                                              1),
                "by_host": hosts}
    finally:
        fleet.stop()


def takeover(root: Path, url: str, lease: float) -> dict[str, Any]:
    fleet = Fleet(root, 3, url, lease, batch=250)
    try:
        big = fleet.shared / "big.csv"
        big.write_text("id,song_name\n" + "".join(f"{i},s\n" for i in range(40_000)))
        _, answer = api(fleet.socks[0], "POST", "/v1/sync/trigger",
                        {"job": "music", "sourceIdentifier": str(big)})
        run_id = answer["data"]["syncRunId"]
        conn = psycopg2.connect(url)
        conn.autocommit = True

        def holder() -> str | None:
            with conn.cursor() as cur:
                cur.execute("SELECT claimed_by, items_processed FROM sync_runs WHERE id = %s",
                            (run_id,))
                row = cur.fetchone()
            return row[0] if row and row[0] and row[1] > 0 else None

        old = wait(holder, 60, "the run to start")
        victim = int(old.rpartition(":")[0][1:])
        fleet.procs[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait(lambda: holder() not in (None, old), 10 * lease, "takeover")
        took = time.monotonic() - killed
        conn.close()
        return {"lease_seconds": lease, "takeover_s": round(took, 2),
                "bound_s": 2 * lease}
    finally:
        fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    admin = psycopg2.connect(args.pg)
    admin.autocommit = True
    results: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-fleet-"))
    configs: list[tuple[int, bool]] = [(1, False), (1, True), (2, True), (3, True)]
    for count, pg in configs:
        name = f"syncd_bench_{uuid.uuid4().hex[:10]}"
        url = ""
        if pg:
            admin.cursor().execute(f'CREATE DATABASE "{name}"')
            url = args.pg.rsplit("/", 1)[0] + f"/{name}"
        try:
            result = throughput(work / f"{count}-{int(pg)}", count, url, args.runs,
                                args.lease)
        finally:
            if pg:
                admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        print(json.dumps(result), flush=True)
        results.append(result)
    name = f"syncd_bench_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        result = takeover(work / "takeover", args.pg.rsplit("/", 1)[0] + f"/{name}",
                          args.lease)
    finally:
        admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(json.dumps(result), flush=True)
    results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
