"""Records per minute through the browser target, against a bare Playwright script.

    .venv/bin/python bench/browser.py                    # 60 dates, 1 and 3 pages
    .venv/bin/python bench/browser.py --records 30 --concurrency 1

Both contenders push the same dates into a fresh fake casting platform
(``tests/fakes/casting.py``, on 127.0.0.1) with the same steps: log in, then per date
the month view (is it there?) and the calendar form (fill, select, fill, click, wait
for "Saved"). ``syncd`` is ``syncd sync availability`` (a CSV → browser job written
by this script) as a subprocess, start-up, Chromium launch and login included; the
floor is this script's ``--_floor`` mode in a subprocess: Playwright's async API and
nothing else, with as many pages as syncd gets. While each runs, the memory of its
whole process tree (Python, Playwright's driver, Chromium's processes) is sampled
every 50 ms: the peak sum of RSS (shared pages counted in each process) and of PSS
(shared pages split between them; closer to what the tree really costs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import browser_setup as bs  # noqa: E402
from tests.fakes.casting import CastingFake  # noqa: E402

SYNCD = str(Path(sys.executable).with_name("syncd"))
PASSWORD = "bench-pass"
GOAL = 0.8  # syncd's records per minute at least this share of the floor's


# -- the floor: the same steps, bare Playwright --------------------------------------


async def floor(url: str, csv_path: Path, pages: int) -> None:
    import csv

    from playwright.async_api import async_playwright

    with csv_path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=bs.CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = await browser.new_context()
        first = await context.new_page()
        await first.goto(url + "/login")
        await first.fill("#email", "actor@example.com")
        await first.fill("#password", PASSWORD)
        await first.click("button[type=submit]")
        await first.locator("#logout").wait_for()
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for row in rows:
            queue.put_nowait(row)

        async def worker(p: Any) -> None:
            while not queue.empty():
                row = queue.get_nowait()
                await p.goto(f"{url}/calendar?month={row['date'][:7]}")
                if await p.locator(f"td[data-date='{row['date']}'].blocked").count():
                    continue
                await p.goto(url + "/calendar")
                await p.locator("#date").fill(row["date"])
                await p.locator("#status").select_option(row["status"])
                await p.locator("#note").fill(row["note"])
                await p.locator("#save").click()
                await p.locator("text=Saved").wait_for()

        others = [await context.new_page() for _ in range(pages - 1)]
        await asyncio.gather(*(worker(p) for p in [first, *others]))
        await browser.close()


# -- measuring -------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """``pid`` and every process descending from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """Sum of RSS and of PSS (KiB) of ``pids``."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def measure(args: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Seconds, peak RSS and PSS (KiB) of the process tree, and its output's tail."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            rss, pss = memory_kib(tree(proc.pid))
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate(timeout=1800)
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({proc.returncode}):\n{out[-3000:]}")
    return seconds, peak[0], peak[1], out


def contender(name: str, records: int, pages: int, workdir: Path) -> dict[str, float]:
    root = workdir / f"{name}-{pages}"
    root.mkdir(parents=True, exist_ok=True)
    with CastingFake(password=PASSWORD) as site:
        bs.write_dates(root, bs.dates(records))
        if name == "floor":
            args = [sys.executable, __file__, "--_floor", site.url, str(root / "dates.csv"),
                    str(pages)]
        else:
            for old in (root / "state").glob("**/*"):
                if old.is_file():
                    old.unlink()
            cfg = bs.write_config(root, site.url, step_timeout=15,
                                  target_extra=f"concurrency = {pages}")
            args = [SYNCD, "sync", "availability", "--config", str(cfg)]
        seconds, rss, pss, out = measure(args, {"CASTING_PASSWORD": PASSWORD})
        created = sum(site.creates.values())
        if created != records or site.duplicates():
            raise SystemExit(f"{name}: {created} of {records} created, duplicates "
                             f"{site.duplicates()}:\n{out[-2000:]}")
    return {"seconds": seconds, "per_minute": records / seconds * 60,
            "rss_mb": rss / 1024, "pss_mb": pss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "syncd-bench-browser")
    parser.add_argument("--_floor", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._floor:
        url, csv_path, pages = args._floor
        asyncio.run(floor(url, Path(csv_path), int(pages)))
        return
    print(f"{args.records} dates, exists + create steps each; fake platform on 127.0.0.1")
    print(f"{'pages':>5}  {'contender':9}  {'seconds':>7}  {'records/min':>11}  "
          f"{'vs floor':>8}  {'peak RSS MB':>11}  {'peak PSS MB':>11}")
    verdicts = []
    for pages in args.concurrency:
        base = contender("floor", args.records, pages, args.workdir)
        ours = contender("syncd", args.records, pages, args.workdir)
        for name, got in (("floor", base), ("syncd", ours)):
            ratio = got["per_minute"] / base["per_minute"]
            print(f"{pages:>5}  {name:9}  {got['seconds']:7.1f}  {got['per_minute']:11.0f}  "
                  f"{ratio:7.2f}x  {got['rss_mb']:11.0f}  {got['pss_mb']:11.0f}")
        verdicts.append((pages, ours["per_minute"] / base["per_minute"]))
    for pages, ratio in verdicts:
        print(f"concurrency {pages}: syncd at {ratio:.2f}x the floor "
              f"({'meets' if ratio >= GOAL else 'BELOW'} the goal of {GOAL}x)")


if __name__ == "__main__":
    main()
