"""The browser target against the fake casting platform, with real Chromium (SPEC §9).

Real ``syncd sync`` processes drive Debian's Chromium through Playwright; the fake
counts every create, update and removal per date. After every run no process that
carries the test's marker (Playwright's driver, Chromium) may be left alive.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser_setup as bs
from tests.fakes.casting import CastingFake
from tests.poll import wait_until
from tests.syncd_cli import SYNCD, syncd

pytestmark = bs.needs_chromium
PASSWORD = "pw-Ü-7781"


@pytest.fixture
def site() -> Iterator[CastingFake]:
    with CastingFake(password=PASSWORD) as fake:
        yield fake


def sync(cfg: Path, mark: str, *, ok: bool = True) -> str:
    done = syncd("sync", "availability", "--config", str(cfg), env=bs.env(PASSWORD, mark),
                 timeout=180)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert bs.chromium_left(mark) == [], "a Chromium process outlived its run"
    return done.stdout + done.stderr


def id_map(root: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(root / "state" / "syncd.db") as db:
        rows = db.execute("SELECT local_key, remote_id, state FROM id_map "
                          "WHERE job = 'availability'").fetchall()
    return {k: (r, s) for k, r, s in rows}


def test_forty_dates_once_then_nothing_then_three_updates_and_three_deletes(
        site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    rows = bs.dates(40)
    bs.write_dates(tmp_path, rows)
    cfg = bs.write_config(tmp_path, site.url)
    out = sync(cfg, mark)
    assert "40 inserted" in out and "0 failed" in out
    assert set(site.entries) == {r["date"] for r in rows} and not site.duplicates()
    assert site.entries[rows[7]["date"]] == {"status": "blocked", "note": "shoot 7"}
    assert site.logins == 1 and not site.refused
    assert {s for _, s in id_map(tmp_path).values()} == {"synced"}
    # the session's cookies: a file of mode 0600, holding no password
    kept = tmp_path / "state" / "browser" / "casting.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert PASSWORD not in kept.read_text(encoding="utf-8")

    pages = sum(site.pages.values())
    out = sync(cfg, mark)  # nothing to send: no browser, no login, no page
    assert "40 unchanged" in out and sum(site.pages.values()) == pages

    for row in rows[:3]:
        row["status"] = "tentative"
    del rows[-3:]
    bs.write_dates(tmp_path, rows)
    out = sync(cfg, mark)
    assert "3 updated" in out and "3 missing" in out, out
    assert {d: n for d, n in site.updates.items()} == {r["date"]: 1 for r in rows[:3]}
    assert site.entries[rows[0]["date"]]["status"] == "tentative"
    assert len(site.removes) == 3 and len(site.entries) == 37
    assert site.logins == 1, "the kept cookies are reused by the next run"
    assert not site.duplicates() and sum(site.creates.values()) == 40


def test_a_broken_step_fails_one_record_with_artifacts_and_the_rest_go_on(
        site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    rows = bs.dates(5)
    rows[2]["status"] = "no-such-status"  # the select finds no such option
    bs.write_dates(tmp_path, rows)
    cfg = bs.write_config(tmp_path, site.url, step_timeout=1.5)
    out = sync(cfg, mark, ok=False)
    assert "4 inserted" in out and "1 failed" in out, out
    assert set(site.entries) == {r["date"] for i, r in enumerate(rows) if i != 2}
    with sqlite3.connect(tmp_path / "state" / "syncd.db") as db:
        (message,), = db.execute("SELECT error_message FROM sync_errors").fetchall()
    assert "create step 3 (select '#status')" in message, message
    saved = bs.artifacts(tmp_path)
    assert {p.suffix for p in saved} == {".png", ".html", ".zip"}, saved
    for path in saved:
        assert str(path.parent) in message and path.name in message
        assert PASSWORD.encode() not in path.read_bytes()
    assert "no-such-status" not in "".join(p.name for p in saved)
    assert all(p.name in out for p in saved), "syncd sync prints the record's error"


def test_a_session_ending_mid_run_logs_in_again_and_fails_nothing(
        tmp_path: Path) -> None:
    mark = bs.marker()
    with CastingFake(password=PASSWORD, expire_after=7) as site:
        rows = bs.dates(12)
        bs.write_dates(tmp_path, rows)
        cfg = bs.write_config(tmp_path, site.url)
        out = sync(cfg, mark)
        assert "12 inserted" in out and "0 failed" in out, out
        assert site.logins >= 3 and not site.duplicates()
        assert set(site.entries) == {r["date"] for r in rows}


def test_the_remotes_rate_limit_paces_page_actions(site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    bs.write_dates(tmp_path, bs.dates(2))
    cfg = bs.write_config(tmp_path, site.url, remote_extra='rate_limit = "5/s"')
    out = sync(cfg, mark)
    assert "2 inserted" in out
    # from the login page's GET to the last page's: 4 more login steps, 8 steps of the
    # first date, 3 of the second (exists: goto, present; create: goto), paced at
    # one per 0.2 s (unpaced, the same takes well under a second)
    assert site.page_times[-1] - site.page_times[0] >= 15 / 5 - 0.3


def test_a_wrong_password_fails_with_an_auth_error_naming_no_secret(
        site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    bs.write_dates(tmp_path, bs.dates(2))
    cfg = bs.write_config(tmp_path, site.url, step_timeout=1.5)
    done = syncd("sync", "availability", "--config", str(cfg),
                 env=bs.env("wrong-password-991", mark), timeout=120)
    assert "the login failed at step 5 (wait_for '#logout')" in done.stdout, done.stdout
    assert "login-step5.png" in done.stdout and "2 failed" in done.stdout
    assert len(site.pages) == 1 and site.pages["/login"] == 2, "one attempt per run"
    assert "wrong-password-991" not in done.stdout + done.stderr
    assert not site.entries and bs.chromium_left(mark) == []


def test_kill_9_mid_run_then_resume_creates_no_date_twice(
        site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    rows = bs.dates(12)
    bs.write_dates(tmp_path, rows)
    cfg = bs.write_config(tmp_path, site.url, batch_rows=3)
    # killed between a "Saved" and the commit of its id map row, then at random
    crash = tmp_path / "crashed"
    done = syncd("sync", "availability", "--config", str(cfg), timeout=180,
                 env={**bs.env(PASSWORD, mark), "SYNCD_TEST_CRASH_BEFORE_SETTLE": str(crash)})
    assert done.returncode == -signal.SIGKILL and crash.exists()
    for after in (5, 8):
        proc = subprocess.Popen([SYNCD, "sync", "availability", "--config", str(cfg)],
                                env={**os.environ, **bs.env(PASSWORD, mark)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda p=proc, n=after: p.poll() is not None  # type: ignore[misc]
                       or sum(site.creates.values()) >= n, timeout=120)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    # Playwright's driver sees its pipe close and takes Chromium down with it
    wait_until(lambda: bs.chromium_left(mark) == [], timeout=30)
    for _ in range(3):
        if syncd("sync", "availability", "--config", str(cfg), timeout=180,
                 env=bs.env(PASSWORD, mark)).returncode == 0:
            break
    assert not site.duplicates(), site.duplicates()
    assert set(site.entries) == {r["date"] for r in rows}
    assert {s for _, s in id_map(tmp_path).values()} == {"synced"}
    assert bs.chromium_left(mark) == []


def test_sigterm_during_a_run_closes_the_browser(site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    bs.write_dates(tmp_path, bs.dates(14))
    cfg = bs.write_config(tmp_path, site.url, batch_rows=3)
    proc = subprocess.Popen([SYNCD, "sync", "availability", "--config", str(cfg)],
                            env={**os.environ, **bs.env(PASSWORD, mark)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: proc.poll() is not None or sum(site.creates.values()) >= 3,
                   timeout=120)
        assert bs.chromium_left(mark), "the run's browser should be running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143  # paused, to be resumed
    finally:
        if proc.poll() is None:
            proc.kill()
    assert bs.chromium_left(mark) == []
    assert sum(site.creates.values()) < 14
    sync(cfg, mark)
    assert len(site.entries) == 14 and not site.duplicates()


def test_a_cancel_and_a_sigterm_of_the_daemon_leave_no_chromium(
        site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    bs.write_dates(tmp_path, bs.dates(40))
    cfg = bs.write_config(tmp_path, site.url, batch_rows=5)
    sock = tmp_path / "api.sock"
    with cfg.open("a", encoding="utf-8") as f:
        f.write(f'\n[api]\nlisten = "unix:{sock}"\n\n[usb]\nenabled = false\n')
    client_env = bs.env(PASSWORD, mark)
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen([SYNCD, "run", "--config", str(cfg)], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, **client_env})
    try:
        wait_until(lambda: sock.exists(), timeout=30)

        def started() -> int:
            done = syncd("trigger", "availability", "--config", str(cfg), env=client_env)
            assert done.returncode == 0, done.stdout + done.stderr
            return int(done.stdout.split()[1])

        def creates_grow_by(count: int) -> None:
            before = sum(site.creates.values())
            wait_until(lambda: sum(site.creates.values()) >= before + count, timeout=60)
            assert len(bs.chromium_left(mark)) > 1, "the run's browser should be running"

        run = started()
        creates_grow_by(2)
        done = syncd("cancel", str(run), "--config", str(cfg), env=client_env)
        assert done.returncode == 0, done.stdout + done.stderr
        # once cancelled, only the daemon itself carries the marker: Chromium is gone
        wait_until(lambda: bs.chromium_left(mark) == [daemon.pid], timeout=60)

        started()
        creates_grow_by(2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        assert bs.chromium_left(mark) == []
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)
    assert not site.duplicates()


def test_an_upload_step_sends_the_file_a_field_names(site: CastingFake, tmp_path: Path) -> None:
    mark = bs.marker()
    photo = tmp_path / "headshot.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "photos.csv").write_text(f"name,photo_path\nheadshot,{photo}\n")
    out = sync(photo_config(tmp_path, site, """\
  { upload = "#photo", value = "{photo_path}" },
  { click = "#upload" },
  { wait_for = "#uploaded" },
  { extract = "#uploaded", attribute = "data-sha256", into = "remote_id" },
"""), mark)
    assert "1 inserted" in out, out
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert site.uploads == [("headshot.jpg", digest)]
    assert id_map(tmp_path)["headshot"] == (digest, "synced"), "extract fills remote_id"


def test_an_upload_step_with_resize_sends_the_image_scaled_down(site: CastingFake,
                                                                tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image", reason="resizing needs Pillow (syncd[media])")
    mark = bs.marker()
    photo = tmp_path / "headshot.jpg"
    image.new("RGB", (3000, 2000), (200, 120, 40)).save(photo, "JPEG")
    (tmp_path / "photos.csv").write_text(f"name,photo_path\nheadshot,{photo}\n")
    out = sync(photo_config(tmp_path, site, """\
  { upload = "#photo", value = "{photo_path}", resize = { max = 1000, quality = 80 } },
  { click = "#upload" },
  { wait_for = "#uploaded" },
"""), mark)
    assert "1 inserted" in out, out
    [(name, digest)] = site.uploads
    assert name == "headshot.jpg" and digest != hashlib.sha256(photo.read_bytes()).hexdigest()
    [sent] = [p for p in (tmp_path / "state" / "media").rglob("headshot.jpg")
              if hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    with image.open(sent) as scaled:
        assert scaled.size == (1000, 667)


def photo_config(root: Path, site: CastingFake, steps: str) -> Path:
    """A job uploading ``photos.csv``'s photo_path on the fake's media page."""
    cfg = bs.write_config(root, site.url, target=f"""\
exists = false
create = [
  {{ goto = "/media" }},
{steps}]
""").read_text(encoding="utf-8")
    cfg = cfg.replace("dates.csv", "photos.csv").replace('key = ["date"]', 'key = ["name"]')
    cfg = cfg.split("[jobs.availability.mapping]")[0] + (
        '[jobs.availability.mapping]\nname = "name"\nphoto_path = "photo_path"\n')
    (root / "syncd.toml").write_text(cfg, encoding="utf-8")
    return root / "syncd.toml"
