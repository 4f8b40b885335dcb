"""Shared by the browser tests: the casting job's config, its input, and Chromium checks.

Every ``syncd`` started here carries a marker in its environment, which Playwright's
driver and Chromium inherit; ``chromium_left(marker)`` finds any of them still alive.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
MARK = "SYNCD_TEST_BROWSER_MARK"

needs_chromium = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and importlib.util.find_spec("playwright")),
    reason=f"needs Chromium at {CHROMIUM} and Playwright (pip install 'syncd[browser]'; "
    "apt-get install chromium)")

LOGIN = """[
  { goto = "/login" },
  { fill = "#email", value = "{username}" },
  { fill = "#password", value = "{password}" },
  { click = "button[type=submit]" },
  { wait_for = "#logout" },
]"""

TARGET = """\
exists = [
  { goto = "/calendar?month={date:%Y-%m}" },
  { present = "td[data-date='{date}'].blocked" },
]
create = [
  { goto = "/calendar" },
  { fill = "#date", value = "{date}" },
  { select = "#status", value = "{status}" },
  { fill = "#note", value = "{note}" },
  { click = "#save" },
  { wait_for = "text=Saved" },
]
update = [
  { goto = "/calendar/edit?date={remote_id}" },
  { select = "#status", value = "{status}" },
  { fill = "#note", value = "{note}" },
  { click = "#save" },
  { wait_for = "td[data-date='{date}']" },
]
delete = [
  { goto = "/calendar?month={date:%Y-%m}" },
  { present = "td[data-date='{date}']" },
  { click = "td[data-date='{date}'] .remove" },
  { wait_for = "text=Removed" },
]
"""

CONFIG = """\
[daemon]
state_dir = {state_dir}
log_format = "json"

[browser]
executable = "{chromium}"
step_timeout = {step_timeout}

[remotes.casting]
base_url = "{url}"
{remote_extra}
[remotes.casting.auth]
type = "form"
username = "{user}"
password = {{ env = "CASTING_PASSWORD" }}
steps = {login}

[jobs.availability]
on_missing = "delete"
max_missing = "100%"
batch_rows = {batch_rows}

[jobs.availability.source]
type = "csv"
path = {csv}

[jobs.availability.target]
type = "browser"
remote = "casting"
key = ["date"]
{target_extra}
{target}
[jobs.availability.mapping]
date = "date"
status = "status"
note = "note"
"""


def write_config(root: Path, url: str, *, user: str = "actor@example.com",
                 step_timeout: float = 5, batch_rows: int = 100, remote_extra: str = "",
                 target_extra: str = "", target: str = TARGET) -> Path:
    path = root / "syncd.toml"
    path.write_text(CONFIG.format(
        state_dir=json.dumps(str(root / "state")), chromium=CHROMIUM,
        step_timeout=step_timeout, url=url, remote_extra=remote_extra, user=user,
        login=LOGIN, batch_rows=batch_rows, csv=json.dumps(str(root / "dates.csv")),
        target_extra=target_extra, target=target), encoding="utf-8")
    return path


def dates(count: int, start: date = date(2027, 3, 1)) -> list[dict[str, str]]:
    """``count`` blocked days from ``start``, over two months and more."""
    return [{"date": (start + timedelta(days=2 * i)).isoformat(), "status": "blocked",
             "note": f"shoot {i}"} for i in range(count)]


def write_dates(root: Path, rows: Iterable[dict[str, str]]) -> None:
    with (root / "dates.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["date", "status", "note"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def env(password: str, marker: str) -> dict[str, str]:
    return {"CASTING_PASSWORD": password, MARK: marker}


def marker() -> str:
    return uuid.uuid4().hex


def chromium_left(mark: str) -> list[int]:
    """Processes (Chromium, Playwright's driver) started with ``mark`` that still live."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and ") Z " not in stat:  # zombies are gone
            found.append(int(entry.name))
    return found


def artifacts(root: Path) -> list[Path]:
    folder = root / "state" / "artifacts"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def have_chromium() -> bool:
    return shutil.which(CHROMIUM) is not None and os.access(CHROMIUM, os.X_OK)


SOURCE = """\
[daemon]
state_dir = {state_dir}
log_format = "json"

[browser]
executable = "{chromium}"
step_timeout = 5

[remotes.casting]
base_url = "{url}"

[remotes.casting.auth]
type = "form"
username = "actor@example.com"
password = {{ env = "CASTING_PASSWORD" }}
steps = {login}

[jobs.bookings]
batch_rows = 10  # a commit per page of 10 (else every 2 seconds)

[jobs.bookings.source]
type = "browser"
remote = "casting"
steps = [ {{ goto = "/bookings" }}, {{ wait_for = "#bookings" }} ]
rows = "tr.booking"
fields = {{ id = "@data-id", date = "td.date", production = "td.production", role = "td.role" }}
next = "a.next"

[jobs.bookings.target]
type = "sql"
table = "bookings"
key = ["booking_id"]

[jobs.bookings.mapping]
booking_id = "id"
date = "date"
production = "production"
role = "role"
"""


def write_source_config(root: Path, url: str) -> Path:
    path = root / "syncd.toml"
    path.write_text(SOURCE.format(state_dir=json.dumps(str(root / "state")),
                                  chromium=CHROMIUM, url=url, login=LOGIN), encoding="utf-8")
    return path


def bookings(count: int) -> list[dict[str, str]]:
    return [{"id": f"B{i:03d}", "date": f"2027-05-{1 + i % 28:02d}",
             "production": f"Tatort „Folge {i}“", "role": "Kommissarin" if i % 2 else "Zeugin"}
            for i in range(1, count + 1)]
