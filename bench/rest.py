"""REST benchmark: syncd against the floor, side by side, in one run.

Source half: records/s from the fake music catalog (``tests/fakes/catalog.py``, in a
process of its own) into SQLite through ``syncd sync``, against the floor: a bare
aiohttp client loop fetching the same pages from the same fake with the same
concurrency (one page at a time: the next page is known only from the previous one's
answer), parsing each answer's JSON and counting its records. 100 records per page and
20 ms of added latency per page; the goal is ≥ 0.8 times the floor.

Export half (``bench/rest_export.py``): creates/s of ``syncd sync`` through the REST
target at concurrency 4 against a fake answering in 20 ms, against the ideal
(4 / 20 ms = 200/s; goal ≥ 0.8) and a bare aiohttp loop posting 4 at a time; and a
rate-limited run against its limit (goal within 5%, no second over it).

    .venv/bin/python bench/rest.py [--records 20000] [--page 100] [--latency 0.02]
                                   [--repeat 3] [--creates 1200] [--rate 50]
                                   [--rate-seconds 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL = 0.8


@dataclass
class Figure:
    name: str
    records: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the fake, in a process of its own -------------------------------------------------


def serve(records: int, latency: float) -> None:
    """``--_serve``: run the fake catalog until stdin closes; print its URL first."""
    sys.path.insert(0, str(ROOT))
    from tests.fakes.catalog import Catalog, make_records

    with Catalog(make_records(records), latency=latency) as fake:
        print(fake.url, flush=True)
        sys.stdin.read()


class Fake:
    def __init__(self, records: int, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--_serve", str(records), str(latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the fake catalog did not start")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


# -- source half ------------------------------------------------------------------------


async def floor(url: str, page: int) -> int:
    """A bare aiohttp loop: page after page until a short one, records counted."""
    import aiohttp

    count, number = 0, 1
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/catalog/page",
                                   params={"page": number, "limit": page}) as answer:
                answer.raise_for_status()
                items = json.loads(await answer.read())["data"]["items"]
            count += len(items)
            if len(items) < page:
                return count
            number += 1


def config(workdir: Path, url: str, page: int) -> Path:
    path = workdir / "syncd.toml"
    path.write_text(f"""
[daemon]
state_dir = {json.dumps(str(workdir / "state"))}
log_format = "json"

[usb]
enabled = false

[jobs.catalog]
[jobs.catalog.source]
type = "rest"
url = {json.dumps(url)}
path = "/catalog/page"
data_path = "data.items"
pagination = {{ type = "page", page_param = "page", limit_param = "limit", limit = {page} }}

[jobs.catalog.target]
type = "sql"
table = "content_index"
key = ["external_id"]

[jobs.catalog.mapping]
external_id = "id"
title = "name"
artist = "artist.name"
genre = "category"

[jobs.catalog.constants]
content_type = "music"
""")
    return path


def syncd_sync(workdir: Path, url: str, page: int) -> tuple[Figure, Figure]:
    """``syncd sync`` on a fresh database: wall time, and the run's own time."""
    state = workdir / "state"
    if state.exists():
        for path in sorted(state.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    cfg = config(workdir, url, page)
    began = time.perf_counter()
    done = subprocess.run([str(BIN / "syncd"), "sync", "catalog", "--config", str(cfg)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"syncd sync failed ({done.returncode}): {done.stderr[-2000:]}")
    with sqlite3.connect(state / "syncd.db") as db:
        inserted, started, completed = db.execute(
            "SELECT items_inserted, started_at, completed_at FROM sync_runs "
            "ORDER BY id DESC LIMIT 1").fetchone()
    run = (_time(completed) - _time(started))
    return (Figure("syncd sync (wall, start-up included)", inserted, wall),
            Figure("syncd run (started_at → completed_at)", inserted, run))


def _time(value: Any) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def source_half(args: argparse.Namespace, workdir: Path) -> list[Figure]:
    fake = Fake(args.records, args.latency)
    try:
        floors, walls, runs = [], [], []
        for i in range(args.repeat):
            say(f"source half, round {i + 1} of {args.repeat}")
            began = time.perf_counter()
            count = asyncio.run(floor(fake.url, args.page))
            floors.append(Figure("floor (bare aiohttp loop)", count,
                                 time.perf_counter() - began))
            wall, run = syncd_sync(workdir, fake.url, args.page)
            walls.append(wall)
            runs.append(run)
    finally:
        fake.close()
    return [_median(floors), _median(runs), _median(walls)]


def _median(figures: list[Figure]) -> Figure:
    middle = statistics.median(f.seconds for f in figures)
    return Figure(figures[0].name, figures[0].records, middle)


# -- export half (REST target) ------------------------------------------------------------


def export_half(args: argparse.Namespace) -> tuple[list[Figure], list[Figure]]:
    """Creates/s at concurrency 4 (ideal, bare loop, syncd); rate-limited (limit, syncd)."""
    sys.path.insert(0, str(ROOT))
    from bench.rest_export import figures

    say("export half")
    rows = [Figure(*row) for row in figures(args.creates, args.rate, args.rate_seconds)]
    return rows[:3], rows[3:]


# -- report -------------------------------------------------------------------------------


def report(title: str, figures: list[Figure]) -> list[dict[str, Any]]:
    if not figures:
        return []
    base = figures[0]
    print(f"\n{title}")
    print(f"{'':52} {'records':>8} {'seconds':>8} {'records/s':>10} {'ratio':>8}")
    rows = []
    for fig in figures:
        ratio = fig.rate / base.rate if base.rate else 0.0
        print(f"{fig.name:52} {fig.records:8d} {fig.seconds:8.2f} {fig.rate:10.0f} "
              f"{ratio:8.2f}")
        rows.append({**asdict(fig), "rate": fig.rate, "ratio": ratio})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000, help="records in the catalog")
    ap.add_argument("--page", type=int, default=100, help="records per page")
    ap.add_argument("--latency", type=float, default=0.02, help="seconds added per page")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are shown")
    ap.add_argument("--creates", type=int, default=1200, help="records exported")
    ap.add_argument("--rate", type=int, default=50, help="the rate-limited run's limit/s")
    ap.add_argument("--rate-seconds", type=float, default=20.0,
                    help="how long the rate-limited run lasts")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the figures")
    ap.add_argument("--_serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._serve:
        serve(int(args._serve[0]), float(args._serve[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="syncd-bench-rest-") as tmp:
        workdir = Path(tmp)
        source = report(f"REST source: {args.records} records, {args.page} a page, "
                        f"{args.latency * 1000:g} ms a page, one page at a time",
                        source_half(args, workdir))
        speed, limited = export_half(args)
        export = report("REST target: creates, concurrency 4, 20 ms a create "
                        "(ratio: against the ideal)", speed)
        paced = report("REST target: rate limited (ratio: against the limit)", limited)
    ratio = source[1]["ratio"]
    print(f"\nsource: syncd run / floor = {ratio:.2f} (goal ≥ {GOAL}): "
          f"{'met' if ratio >= GOAL else 'NOT met'}")
    ratio = export[2]["ratio"]
    print(f"export: syncd / ideal = {ratio:.2f} (goal ≥ {GOAL}): "
          f"{'met' if ratio >= GOAL else 'NOT met'}; syncd / bare loop = "
          f"{ratio / export[1]['ratio']:.2f}")
    ratio = paced[1]["ratio"]
    print(f"rate limited: syncd / limit = {ratio:.2f} (goal within 5%): "
          f"{'met' if abs(1 - ratio) <= 0.05 else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "export": export, "rate_limited": paced,
                                         "python": sys.version, "cpus": os.cpu_count()},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
