"""Export throughput of the REST target against the Broadstreet fake, side by side.

1. creates/s at concurrency 4 against a fake answering in 20 ms, against the ideal
   (4 / 20 ms = 200/s; goal at least 0.8 of it) and against a bare aiohttp loop posting
   the same records 4 at a time (what the fake and this machine allow at all);
2. a run limited to ``--rate``/s (concurrency 4, 20 ms answers) lasting ``--seconds``,
   against that limit: goal within 5%, and no second-long window over it.

Each syncd figure is one ``syncd sync`` of a fresh SQLite store, through the engine,
the id map (intents committed before each batch's creates) and the HTTP client; it is
timed on the fake's side, from the first create's arrival to the last one's answer.
``bench/rest.py`` prints these beside the REST source's figures.

    .venv/bin/python bench/rest_export.py [--records 1200] [--rate 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import export_setup as ex  # noqa: E402
from tests.fakes.broadstreet import BroadstreetFake  # noqa: E402

SYNCD = str(Path(sys.executable).with_name("syncd"))
LATENCY = 0.020
CONCURRENCY = 4


def export(records: int, extra: str) -> list[float]:
    """Arrival times of the creates of one ``syncd sync`` of ``records`` networks."""
    with tempfile.TemporaryDirectory() as tmp, BroadstreetFake(latency=LATENCY) as api:
        root = Path(tmp)
        ex.load(root, {"networks": [{"id": i, "name": f"N{i}"} for i in range(1, records + 1)]})
        cfg = ex.write_config(root, api.url, batch_rows=200, remote_extra=extra)
        done = subprocess.run([SYNCD, "sync", "networks_out", "--config", str(cfg)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise SystemExit(done.stdout + done.stderr)
        return [t for m, _, t in api.requests if m == "POST"]


def bare(records: int) -> list[float]:
    """Arrival times of the same creates from a bare aiohttp loop, 4 at a time."""
    import aiohttp

    async def post_all(url: str) -> None:
        slots = asyncio.Semaphore(CONCURRENCY)
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> None:
                async with slots, session.post(f"{url}/networks",
                                               json={"name": f"N{i}"}) as answer:
                    await answer.read()
            await asyncio.gather(*(one(i) for i in range(1, records + 1)))

    with BroadstreetFake(latency=LATENCY) as api:
        asyncio.run(post_all(api.url))
        return [t for m, _, t in api.requests if m == "POST"]


def span(arrivals: list[float]) -> float:
    """First arrival to the last answer (each create takes ``LATENCY`` on the fake)."""
    return arrivals[-1] - arrivals[0] + LATENCY


def paced_rate(arrivals: list[float]) -> float:
    """Requests per second between the first and the last arrival (n - 1 intervals)."""
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any window of one second."""
    return max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))


def figures(records: int, rate: int, seconds: float) -> list[tuple[str, int, float]]:
    """(name, creates, seconds) rows: ideal, bare loop, syncd; limit, syncd limited."""
    syncd = export(records, f"concurrency = {CONCURRENCY}")
    floor = bare(records)
    limited = export(int(rate * seconds) + 1,
                     f'concurrency = {CONCURRENCY}\nrate_limit = "{rate}/s"')
    return [(f"ideal ({CONCURRENCY} / {LATENCY * 1000:g} ms)", records,
             records * LATENCY / CONCURRENCY),
            (f"bare aiohttp loop, {CONCURRENCY} at once", len(floor), span(floor)),
            (f"syncd sync, concurrency {CONCURRENCY}", len(syncd), span(syncd)),
            (f"limit {rate}/s", len(limited) - 1, (len(limited) - 1) / rate),
            (f"syncd sync, rate_limit {rate}/s (busiest second "
             f"{busiest_second(limited)})", len(limited) - 1,
             (len(limited) - 1) / paced_rate(limited))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1200)
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    began = time.monotonic()
    rows = figures(args.records, args.rate, args.seconds)
    print(f"{'':52}{'creates':>8}{'per s':>9}{'ratio':>7}")
    for i, (name, count, secs) in enumerate(rows):
        base = rows[0] if i < 3 else rows[3]
        ratio = (count / secs) / (base[1] / base[2])
        print(f"{name:52}{count:8d}{count / secs:9.1f}{ratio:7.2f}")
    print(f"({time.monotonic() - began:.0f}s in all)")


if __name__ == "__main__":
    main()
