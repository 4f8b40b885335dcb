"""Watched folders with real inotify events on real temporary folders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import Engine, resolve_jobs
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.store.models import IngestedFile, SyncRun
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.watch import FolderWatcher, is_temporary
from tests.poll import wait_for, wait_until
from tests.syncd_cli import SYNCD, syncd


def config(tmp_path: Path, after: str = "archive", **job: Any) -> Any:
    return validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": {"music": {
        "source": {"type": "csv"}, "target": {"type": "sql", "key": ["external_id"]},
        "mapping": {"external_id": "id", "title": "song_name"},
        "watch": {"path": str(tmp_path / "inbox"), "patterns": ["*.csv"], "after": after},
        **job}}})


class Daemonish:
    """The engine and a folder watcher, as ``syncd run`` wires them."""

    def __init__(self, store: Store, tmp_path: Path, after: str = "archive",
                 **job: Any) -> None:
        self.config = config(tmp_path, after, **job)
        _, registry = get_pluginmanager()
        self.engine = Engine(store, resolve_jobs(self.config, registry, "t.toml"),
                             tmp_path / "state")
        self.watcher = FolderWatcher(FileIngestor(self.engine), self.config)
        self.inbox = tmp_path / "inbox"
        self.store = store

    def runs(self) -> list[SyncRun]:
        return list(SyncRun.select().where(SyncRun.trigger == "watch").order_by(SyncRun.id))

    def run_for(self, name: str) -> SyncRun | None:
        return next((r for r in self.runs() if r.source_identifier.endswith("/" + name)), None)

    def rows(self) -> list[tuple]:
        return self.store.db.execute_sql(
            "SELECT external_id, title FROM content_index ORDER BY 1").fetchall()


@pytest.fixture
async def daemon(store: Store, tmp_path: Path) -> AsyncIterator[Daemonish]:
    d = Daemonish(store, tmp_path)
    await d.watcher.start()
    yield d
    await d.watcher.stop()
    await d.engine.shutdown()


def drop(folder: Path, name: str, body: str) -> Path:
    """Write under a temporary name, then rename into place, as careful producers do."""
    temp = folder / f".{name}.part"
    temp.write_text(body)
    temp.rename(folder / name)
    return folder / name


def csv_body(*ids: int) -> str:
    return "id,song_name\n" + "".join(f"{i},Song {i}\n" for i in ids)


def processed(d: Daemonish) -> list[str]:
    folder = d.inbox / "processed"
    return sorted(p.name.split("-", 1)[1] for p in folder.iterdir()) if folder.exists() else []


async def test_a_renamed_file_is_ingested_and_archived(daemon):
    drop(daemon.inbox, "a.csv", csv_body(1, 2))
    await wait_for(lambda: processed(daemon) == ["a.csv"])
    run = daemon.run_for("a.csv")
    assert (run.status, run.items_inserted) == ("completed", 2)
    assert daemon.rows() == [("1", "Song 1"), ("2", "Song 2")]
    assert not (daemon.inbox / "a.csv").exists()


async def test_a_slow_writer_is_waited_for_until_it_closes(daemon):
    slow = open(daemon.inbox / "slow.csv", "w")  # noqa: SIM115 - held open on purpose
    slow.write(csv_body(1, 2))
    slow.flush()
    # the pause outlasts any quiet period: a marker dropped after it is done first
    drop(daemon.inbox, "marker.csv", csv_body(100))
    await wait_for(lambda: processed(daemon) == ["marker.csv"])
    assert daemon.run_for("slow.csv") is None
    slow.write("3,Song 3\n")
    slow.close()
    await wait_for(lambda: "slow.csv" in processed(daemon))
    assert daemon.run_for("slow.csv").items_inserted == 3


async def test_temporary_and_unmatched_names_are_ignored(daemon):
    for name in (".hidden.csv", "x.csv.tmp", "y.part", "~lock.csv", "notes.txt"):
        (daemon.inbox / name).write_text(csv_body(1))
    drop(daemon.inbox, "real.csv", csv_body(1))
    await wait_for(lambda: processed(daemon) == ["real.csv"])
    assert [r.source_identifier.rsplit("/", 1)[1] for r in daemon.runs()] == ["real.csv"]
    assert all(is_temporary(n) for n in (".rsync.csv.Ab12Cd", "~syncthing~a.csv.tmp",
                                         "b.csv.part", "dl.crdownload"))


async def test_the_same_content_under_a_new_name_is_skipped_and_archived(daemon):
    drop(daemon.inbox, "one.csv", csv_body(1))
    await wait_for(lambda: processed(daemon) == ["one.csv"])
    drop(daemon.inbox, "copy.csv", csv_body(1))
    await wait_for(lambda: processed(daemon) == ["copy.csv", "one.csv"])
    copy = daemon.run_for("copy.csv")
    assert (copy.status, copy.items_skipped, copy.items_processed) == ("completed", 1, 0)
    assert "already ingested by run" in copy.error_message


async def test_garbage_goes_to_failed_with_the_reason_beside_it(daemon):
    (daemon.inbox / "junk.csv").write_bytes(bytes(range(256)) * 20)
    failed = daemon.inbox / "failed"
    await wait_for(lambda: (failed / "junk.csv.error.json").exists())
    report = json.loads((failed / "junk.csv.error.json").read_text())
    assert "does not look like a CSV text file" in report["error"] and report["runId"]
    assert (failed / "junk.csv").exists() and not (daemon.inbox / "junk.csv").exists()


async def test_a_burst_of_files_is_queued_and_each_ingested_once(daemon):
    for i in range(500):
        drop(daemon.inbox, f"f{i:03}.csv", csv_body(i))
    await wait_for(lambda: len(processed(daemon)) == 500, timeout=240)
    runs = daemon.runs()
    assert len(runs) == 500 and {r.status for r in runs} == {"completed"}
    assert sum(r.items_inserted for r in runs) == 500
    assert len(daemon.rows()) == 500


async def test_files_present_at_start_are_caught_up(store, tmp_path):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "early.csv").write_text(csv_body(7))
    d = Daemonish(store, tmp_path)
    await d.watcher.start()
    try:
        await wait_for(lambda: processed(d) == ["early.csv"])
        assert d.rows() == [("7", "Song 7")]
    finally:
        await d.watcher.stop()


async def test_lost_events_are_recovered_by_a_rescan_on_overflow(daemon):
    daemon.watcher.observer.stop()  # from now on inotify events are lost
    await asyncio.to_thread(daemon.watcher.observer.join, 10)
    (daemon.inbox / "lost.csv").write_text(csv_body(5))
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost")
    await wait_for(lambda: processed(daemon) == ["lost.csv"])


async def test_a_watched_folder_removed_and_made_again_is_watched_again(daemon):
    """``rm -rf inbox; mkdir inbox``: inotify's watch went with the folder. The new one is
    watched within a second, and what was dropped into it before that is taken too."""
    drop(daemon.inbox, "a.csv", csv_body(1))
    await wait_for(lambda: processed(daemon) == ["a.csv"])
    shutil.rmtree(daemon.inbox)
    await daemon.watcher.rescan()  # a rescan meanwhile (the 5-minute one) finds nothing
    await wait_for(lambda: daemon.watcher.folders[0].identity is None)
    daemon.inbox.mkdir()
    drop(daemon.inbox, "early.csv", csv_body(2))  # may come before the watch
    await wait_for(lambda: daemon.watcher.folders[0].identity is not None)
    drop(daemon.inbox, "late.csv", csv_body(3))
    await wait_for(lambda: processed(daemon) == ["early.csv", "late.csv"])
    assert daemon.rows() == [("1", "Song 1"), ("2", "Song 2"), ("3", "Song 3")]


async def test_a_watched_folder_removed_and_made_again_at_once_is_watched_again(daemon):
    """``rm -rf inbox && mkdir inbox``: ext4 gives the new folder the old one's inode
    number back, so only inotify's word that the folder went tells them apart."""
    shutil.rmtree(daemon.inbox)
    daemon.inbox.mkdir()
    drop(daemon.inbox, "again.csv", csv_body(4))
    await wait_for(lambda: processed(daemon) == ["again.csv"])
    assert daemon.rows() == [("4", "Song 4")]


async def test_a_link_put_in_place_of_the_watched_folder_is_not_watched(daemon, tmp_path):
    """The folder replaced by a link to another one (``/etc``, say): nothing there is read
    until a real folder is back at the path."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text(csv_body(9))
    shutil.rmtree(daemon.inbox)
    daemon.inbox.symlink_to(elsewhere)
    await daemon.watcher.check_folders()
    assert daemon.watcher.folders[0].identity is None
    await daemon.watcher.check_folders()  # still a link: still not watched
    await daemon.watcher.rescan()  # nor listed
    assert daemon.watcher.folders[0].identity is None
    assert not daemon.watcher.folders[0].queued
    assert daemon.rows() == [] and (elsewhere / "x.csv").exists()
    daemon.inbox.unlink()
    daemon.inbox.mkdir()
    drop(daemon.inbox, "b.csv", csv_body(2))
    await wait_for(lambda: processed(daemon) == ["b.csv"])
    assert daemon.rows() == [("2", "Song 2")]


@pytest.mark.parametrize("after", ["delete", "keep"])
async def test_after_delete_or_keep(store, tmp_path, after):
    d = Daemonish(store, tmp_path, after)
    await d.watcher.start()
    try:
        path = drop(d.inbox, "a.csv", csv_body(1))
        await wait_for(lambda: d.run_for("a.csv") is not None
                       and d.run_for("a.csv").status == "completed")
        await wait_for(lambda: path.exists() == (after == "keep"))
        if after == "keep":  # a rescan finds it again, and says nothing new
            await d.watcher.rescan()
            await wait_for(lambda: not d.watcher.folders[0].queued)
            assert len(d.runs()) == 1
    finally:
        await d.watcher.stop()


DAEMON_CONFIG = """
[daemon]
state_dir = "{root}/state"
log_format = "json"
[api]
listen = "unix:{root}/api.sock"
[usb]
enabled = false
[jobs.music.source]
type = "csv"
[jobs.music.target]
type = "sql"
[jobs.music.mapping]
external_id = "id"
title = "song_name"
[jobs.music.watch]
path = "{root}/inbox"
"""


@dataclass
class Running:
    config: Path
    inbox: Path
    log: str = ""  # the daemon's output, once it stopped


@contextlib.contextmanager
def syncd_run(tmp_path: Path) -> Iterator[Running]:
    """``syncd run`` watching ``tmp_path/inbox``; stopped with SIGTERM, exit 0 required."""
    running = Running(tmp_path / "syncd.toml", tmp_path / "inbox")
    running.config.write_text(DAEMON_CONFIG.format(root=tmp_path))
    daemon = subprocess.Popen([SYNCD, "run", "--config", str(running.config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (tmp_path / "api.sock").exists() and running.inbox.exists())
        yield running
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, running.log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, running.log


def test_the_daemon_ingests_a_dropped_file(tmp_path):
    """End to end: ``syncd run`` with a watched folder, as a user runs it."""
    with syncd_run(tmp_path) as daemon:
        drop(daemon.inbox, "drop.csv", csv_body(1, 2, 3))
        done = daemon.inbox / "processed"
        wait_until(lambda: done.exists() and any(done.iterdir()))
        assert [p.name.endswith("-drop.csv") for p in done.iterdir()] == [True]
    assert '"event": "file done"' in daemon.log


def test_retrying_a_failed_file_reads_it_in_failed(tmp_path):
    """The file went to failed/, the user fixed it there: ``syncd retry`` completes."""
    db = tmp_path / "state" / "syncd.db"
    with syncd_run(tmp_path) as daemon:
        inbox = daemon.inbox
        drop(inbox, "bad.csv", "ident,song_name\n1,Song 1\n")  # no id column
        report = inbox / "failed" / "bad.csv.error.json"
        wait_until(report.exists)
        run_id = json.loads(report.read_text())["runId"]
        (inbox / "failed" / "bad.csv").write_text(csv_body(1, 2))  # fixed where it is
        retried = syncd("retry", str(run_id), "--config", str(daemon.config))
        assert retried.returncode == 0, retried.stdout + retried.stderr

        def retry_done() -> list[tuple]:
            with contextlib.closing(sqlite3.connect(db)) as con:
                return con.execute("SELECT status, source_identifier, items_inserted "
                                   "FROM sync_runs WHERE parent_run = ? AND status NOT IN "
                                   "('pending', 'in_progress')", (run_id,)).fetchall()

        done = wait_until(retry_done)
        assert done == [("completed", str(inbox / "failed" / "bad.csv"), 2)]


# -- hostile or hurried inboxes (issue 7) ------------------------------------------


SECRET = "root:$6$SECRET-HASH$abcdef:19000:0:99999:7:::"


def failed_report(d: Daemonish, name: str) -> dict[str, Any]:
    return json.loads((d.inbox / "failed" / f"{name}.error.json").read_text())


async def test_a_symlink_renamed_into_the_inbox_is_refused_unread(daemon, tmp_path):
    """``ln -s /etc/shadow inbox/.x; mv inbox/.x inbox/x.csv``: nothing of it is read."""
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\nbin:*:19000:0:99999:7:::\n")
    (daemon.inbox / ".x").symlink_to(secret)
    (daemon.inbox / ".x").rename(daemon.inbox / "x.csv")
    await wait_for(lambda: (daemon.inbox / "failed" / "x.csv.error.json").exists())
    report = failed_report(daemon, "x.csv")
    assert "symbolic link" in report["error"] and "nothing was read" in report["error"]
    assert "SECRET" not in json.dumps(report)
    assert (daemon.inbox / "failed" / "x.csv").is_symlink()  # moved as a link, not followed
    assert secret.read_text().startswith(SECRET)
    assert not any("SECRET" in (r.error_message or "") for r in SyncRun.select())
    assert daemon.rows() == []


async def test_a_symlink_made_in_the_inbox_is_refused_at_once(daemon, tmp_path):
    """``ln -s /etc/shadow inbox/y.csv``: no close or rename follows, so the link is taken
    as it appears (not at the next rescan, 5 minutes on), refused, and nothing read."""
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    (daemon.inbox / "y.csv").symlink_to(secret)
    await wait_for(lambda: (daemon.inbox / "failed" / "y.csv.error.json").exists())
    report = failed_report(daemon, "y.csv")
    assert "symbolic link" in report["error"] and "nothing was read" in report["error"]
    assert "SECRET" not in json.dumps(report)
    assert (daemon.inbox / "failed" / "y.csv").is_symlink()
    assert daemon.rows() == []


async def test_a_fifo_made_in_the_inbox_is_refused_at_once_and_the_folder_goes_on(daemon):
    """``mkfifo inbox/pipe.csv``: refused without blocking on it; the next file syncs."""
    os.mkfifo(daemon.inbox / "pipe.csv")
    await wait_for(lambda: (daemon.inbox / "failed" / "pipe.csv.error.json").exists())
    assert "FIFO" in failed_report(daemon, "pipe.csv")["error"]
    assert stat.S_ISFIFO(os.lstat(daemon.inbox / "failed" / "pipe.csv").st_mode)
    drop(daemon.inbox, "after.csv", csv_body(1))
    await wait_for(lambda: processed(daemon) == ["after.csv"])


async def test_a_hard_link_made_in_the_inbox_is_ingested(daemon, tmp_path):
    """``ln export.csv inbox/``: the file is whole as it appears, and no close follows."""
    export = tmp_path / "export.csv"
    export.write_text(csv_body(1, 2))
    os.link(export, daemon.inbox / "export.csv")
    await wait_for(lambda: processed(daemon) == ["export.csv"])
    assert daemon.rows() == [("1", "Song 1"), ("2", "Song 2")]
    assert export.read_text() == csv_body(1, 2)  # the archive moved the inbox's link only


async def test_a_file_whose_name_is_not_utf8_is_refused_and_the_folder_goes_on(daemon):
    """A name of Latin-1 bytes (``caf\\xe9.csv``, from an old Windows share, say): runs
    and records keep names as UTF-8 text, so the file is refused by name, unread, instead
    of failing in the store at each rescan."""
    body = csv_body(1).encode()
    temp = os.fsencode(daemon.inbox / ".latin.part")
    with open(temp, "wb") as f:
        f.write(body)
    os.rename(temp, os.fsencode(daemon.inbox) + b"/caf\xe9.csv")
    failed = os.fsencode(daemon.inbox / "failed") + b"/caf\xe9.csv"
    await wait_for(lambda: os.path.exists(failed + b".error.json"))
    with open(failed + b".error.json", "rb") as f:
        report = json.loads(f.read())
    assert "caf\\xe9.csv" in report["error"] and "not UTF-8" in report["error"]
    assert report["runId"] is None and daemon.runs() == []
    with open(failed, "rb") as f:
        assert f.read() == body  # moved as it was
    drop(daemon.inbox, "after.csv", csv_body(2))
    await wait_for(lambda: processed(daemon) == ["after.csv"])
    assert daemon.rows() == [("2", "Song 2")]


async def test_failed_planted_as_a_symlink_is_not_followed(daemon, tmp_path):
    """An inbox writer who makes ``failed`` a link to another folder moves nothing there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (daemon.inbox / "failed").symlink_to(elsewhere)
    (daemon.inbox / "junk.csv").write_bytes(b"\x00\x01 not a csv at all\n")
    drop(daemon.inbox, "after.csv", csv_body(1))  # the folder goes on
    await wait_for(lambda: processed(daemon) == ["after.csv"])
    assert list(elsewhere.iterdir()) == []
    assert (daemon.inbox / "junk.csv").exists()  # left in place, nothing lost


async def test_a_fifo_is_refused_at_once_and_the_folder_goes_on(daemon):
    fifo = daemon.inbox / ".p"
    os.mkfifo(fifo)
    fifo.rename(daemon.inbox / "p.csv")
    try:
        drop(daemon.inbox, "after.csv", csv_body(1))
        await wait_for(lambda: processed(daemon) == ["after.csv"])
        await wait_for(lambda: (daemon.inbox / "failed" / "p.csv.error.json").exists())
        assert "FIFO" in failed_report(daemon, "p.csv")["error"]
        assert stat.S_ISFIFO(os.lstat(daemon.inbox / "failed" / "p.csv").st_mode)
    finally:  # before the fix a reader blocks on the FIFO: let it go
        for path in (daemon.inbox / "p.csv", daemon.inbox / "failed" / "p.csv"):
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_a_file_replaced_while_its_run_reads_it_is_taken_as_new(store, tmp_path):
    d = Daemonish(store, tmp_path, batch_rows=50)  # many small commits: a long read
    await d.watcher.start()
    try:
        rows = 20_000
        drop(d.inbox, "x.csv", csv_body(*range(rows)))
        await wait_for(lambda: (r := d.run_for("x.csv")) is not None and r.checkpoint)
        drop(d.inbox, "x.csv", csv_body(777_777))  # rename over the file being read
        seen = d.run_for("x.csv").items_processed
        assert seen < rows, "the run ended before the file was replaced"
        await wait_for(lambda: len(d.runs()) == 2 and processed(d) == ["x.csv"])
        await wait_for(lambda: not d.watcher.folders[0].queued)
        runs = [(r.status, r.items_inserted) for r in d.runs()]
        assert runs == [("completed", rows), ("completed", 1)]
        assert ("777777", "Song 777777") in d.rows() and len(d.rows()) == rows + 1
        # the file read first was gone (renamed over); what is archived is the new one
        [archived] = (d.inbox / "processed").iterdir()
        assert archived.read_text() == csv_body(777_777)
        assert not (d.inbox / "x.csv").exists()
    finally:
        await d.watcher.stop()
        await d.engine.shutdown()


async def test_a_file_moved_in_from_another_folder_is_an_arrival(daemon, tmp_path):
    """``mv ~/m.csv inbox/``: no close-after-write, no paired rename, still taken at once."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.csv").write_text(csv_body(3))
    (outside / "m.csv").rename(daemon.inbox / "m.csv")
    await wait_for(lambda: processed(daemon) == ["m.csv"], timeout=10)  # not the 300 s rescan
    assert daemon.rows() == [("3", "Song 3")]


async def test_a_run_resumed_at_start_is_recorded_and_archived_once(store, tmp_path):
    """A crash left the file's run unfinished: the resume finishes it, nothing runs twice."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "r.csv"
    path.write_text(csv_body(1, 2))
    d = Daemonish(store, tmp_path)
    run_id = store.create_run(job="music", trigger="watch", source_type="csv",
                              source_identifier=str(path))
    assert await d.engine.resume_all() == [run_id]  # as ``syncd run`` starts
    await d.watcher.start()
    try:
        await wait_for(lambda: processed(d) == ["r.csv"])
        await wait_for(lambda: not d.watcher.folders[0].queued)
        assert [(r.id, r.status) for r in d.runs()] == [(run_id, "completed")]
        assert [(f.path, f.sync_run_id) for f in IngestedFile.select()] == [(str(path), run_id)]
        assert d.rows() == [("1", "Song 1"), ("2", "Song 2")]
    finally:
        await d.watcher.stop()
        await d.engine.shutdown()


def test_sigkill_of_the_daemon_never_ingests_a_watched_file_twice(tmp_path):
    """A fast sample of the kill -9 sweep (tests/test_crash_safety.py runs ≥ 20 kills)."""
    from tests.test_crash_safety import read_csv, watched_kill_sweep, write_csv

    source = tmp_path / "music.csv"
    write_csv(source, 50_000, seed=7)
    # mid-run, then at completion before the file is recorded (the resume of item 18),
    # then a late kill whose resume finishes at once, then just after the archive
    aims = ("commit", "completed", "progress", "archived")
    rounds = watched_kill_sweep(tmp_path / "sweep", source, read_csv(source), kills=4, seed=7,
                                aims=aims)
    assert [k.aim for r in rounds for k in r] == list(aims)
