"""The browser source: the fake platform's paginated bookings, behind its login, imported
page by page with a checkpoint per page (seed 001's pull strategy), real Chromium."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

from tests import browser_setup as bs
from tests.crashkit import query
from tests.fakes.casting import CastingFake
from tests.poll import wait_until
from tests.syncd_cli import SYNCD, syncd

pytestmark = bs.needs_chromium
PASSWORD = "pw-bookings-5"


def table(root: Path) -> dict[str, tuple[str, str, str]]:
    with sqlite3.connect(root / "state" / "syncd.db") as db:
        rows = db.execute("SELECT booking_id, date, production, role FROM bookings").fetchall()
    return {r[0]: r[1:] for r in rows}


def expected(bookings: list[dict[str, str]]) -> dict[str, tuple[str, str, str]]:
    return {b["id"]: (b["date"], b["production"], b["role"]) for b in bookings}


def test_bookings_are_imported_page_by_page_and_a_killed_run_resumes_at_its_page(
        tmp_path: Path) -> None:
    mark = bs.marker()
    bookings = bs.bookings(25)  # pages of 10, 10 and 5
    with CastingFake(password=PASSWORD, bookings=bookings, gate_page=3) as site:
        cfg = bs.write_source_config(tmp_path, site.url)
        proc = subprocess.Popen([SYNCD, "sync", "bookings", "--config", str(cfg)],
                                env={**os.environ, **bs.env(PASSWORD, mark)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:  # held at page 3: pages 1 and 2 are committed, each with its checkpoint
            db = tmp_path / "state" / "syncd.db"
            wait_until(lambda: proc.poll() is not None or site.booking_pages[3], timeout=60)
            wait_until(lambda: proc.poll() is not None or query(
                db, "SELECT items_processed FROM sync_runs")[0][0] == 20, timeout=30)
            (checkpoint,), = query(db, "SELECT checkpoint FROM sync_runs")[0:1]
            assert json.loads(checkpoint)["next"].endswith("/bookings?page=3")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        site.gate.set()
        wait_until(lambda: bs.chromium_left(mark) == [], timeout=30)
        done = syncd("sync", "bookings", "--config", str(cfg), env=bs.env(PASSWORD, mark),
                     timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert table(tmp_path) == expected(bookings)
        assert dict(site.booking_pages) == {1: 1, 2: 1, 3: 2}, "no committed page read again"
        assert bs.chromium_left(mark) == []

        # a booking changed on the platform is updated by the next run
        site.bookings[4] = {**site.bookings[4], "role": "Hauptrolle"}
        done = syncd("sync", "bookings", "--config", str(cfg), env=bs.env(PASSWORD, mark),
                     timeout=120)
        assert done.returncode == 0 and "1 updated" in done.stdout, done.stdout
        assert site.logins == 1, "the kept cookies are reused"
        assert table(tmp_path) == expected(site.bookings)
