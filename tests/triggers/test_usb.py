"""USB drives: real udev events from loop devices, and the drive helpers on plain folders.

The drive tests build an ext4 image (``mkfs.ext4 -d`` fills it without mounting it, so
no stray loop device or udev event appears), attach it with ``losetup`` so udev
announces it, and let a real :class:`UsbMonitor` with a real engine and SQLite store
take it from there. They need root, losetup, mkfs.ext4 and a running systemd-udevd
(``scripts/test-services`` starts one); elsewhere they skip, and in CI as root they fail.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import pyudev

from syncd import hookimpl
from syncd.api.events import EventHub
from syncd.api.metrics import Metrics
from syncd.config import validate
from syncd.engine import Engine, resolve_jobs
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.store.models import IngestedFile, SyncRun
from syncd.triggers.drive import (
    READONLY_OPTIONS,
    DriveRemoved,
    MountEntry,
    copy_off,
    find_files,
    find_mount,
    kernel_has_nosymfollow,
    mount_entries,
    mount_readonly,
    mounts_of,
    safe_name,
    unmount,
)
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.usb import UsbMonitor, wanted
from tests.poll import wait_for

SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
TOOLS = ("losetup", "mkfs.ext4", "mount", "umount", "udevadm")
HEADER = "id,song_name,artist_name,music_genre\n"
A_CSV = (HEADER + "1,Song A,Artist,Pop\n2,Song B,Artist,Rock\n").encode()
DRIVE_TIMEOUT = 60.0


def tool(name: str) -> str:
    found = shutil.which(name, path=SBIN_PATH)
    assert found, name
    return found


def udev_problem() -> str | None:
    """Why real drive tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to attach loop devices and mount them"
    missing = [name for name in TOOLS if shutil.which(name, path=SBIN_PATH) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install udev util-linux e2fsprogs)"
    ping = subprocess.run([tool("udevadm"), "control", "--ping", "--timeout=5"],
                          capture_output=True, text=True, check=False)
    if ping.returncode != 0:
        return ("systemd-udevd is not running (scripts/test-services starts it): "
                f"{ping.stderr.strip()}")
    return None


@pytest.fixture
def udev() -> None:
    problem = udev_problem()
    if problem:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"CI runs as root, so the USB tests must run: {problem}")
        pytest.skip(problem)


def unique_label() -> str:
    return "sy" + uuid.uuid4().hex[:10]  # ext4 labels hold 16 bytes


def make_image(path: Path, label: str, files: dict[str, bytes],
               links: dict[str, str] | None = None, size_mb: int = 16,
               fs_uuid: str | None = None) -> str:
    """An ext4 image holding ``files`` and symbolic ``links``; returns its UUID."""
    tree = path.with_name(path.name + ".tree")
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    for name, target in (links or {}).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, tree / name)
    fs_uuid = fs_uuid or str(uuid.uuid4())
    with open(path, "wb") as f:
        f.truncate(size_mb * 2**20)
    subprocess.run([tool("mkfs.ext4"), "-q", "-F", "-L", label, "-U", fs_uuid, "-d", str(tree),
                    str(path)], check=True)
    shutil.rmtree(tree)
    return fs_uuid


class Loops:
    """Loop devices attached by a test; all of them are detached at teardown."""

    def __init__(self) -> None:
        self.images: list[Path] = []

    def attach(self, image: Path) -> str:
        self.images.append(image)
        return subprocess.run([tool("losetup"), "-f", "--show", str(image)], check=True,
                              capture_output=True, text=True).stdout.strip()

    def attach_to(self, dev: str, image: Path) -> str:
        """Attach ``image`` to the loop device ``dev`` (the same node a drive had)."""
        self.images.append(image)
        subprocess.run([tool("losetup"), dev, str(image)], check=True)
        return dev

    @staticmethod
    def detach(dev: str) -> None:
        subprocess.run([tool("losetup"), "-d", dev], check=True)

    @staticmethod
    def devices_of(image: Path) -> list[str]:
        out = subprocess.run([tool("losetup"), "-j", str(image)], capture_output=True,
                             text=True, check=False).stdout
        return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]

    def detach_all(self) -> None:
        for image in self.images:
            for dev in self.devices_of(image):
                for entry in mounts_of(dev):
                    subprocess.run([tool("umount"), "-l", str(entry.mount_point)],
                                   check=False)
                subprocess.run([tool("losetup"), "-d", dev], check=False)


@pytest.fixture
def loops(udev: None) -> Iterator[Loops]:
    attached = Loops()
    yield attached
    attached.detach_all()


class Rig:
    """An engine, a file ingestor and a USB monitor, as ``syncd run`` wires them."""

    def __init__(self, store: Store, tmp_path: Path, label: str, max_file_mb: int = 512,
                 patterns: tuple[str, ...] = ("music/*.csv",), enabled: bool = True) -> None:
        self.state = tmp_path / "state"
        self.config = validate({
            "daemon": {"state_dir": str(self.state)},
            "usb": {"enabled": enabled, "match": {"ID_FS_LABEL": label},
                    "max_file_mb": max_file_mb},
            "jobs": {"music": {
                "source": {"type": "csv"},
                "target": {"type": "sql", "table": "content_index", "key": ["external_id"]},
                "mapping": {"external_id": "id", "title": "song_name",
                            "artist": "artist_name", "genre": "music_genre"},
                "constants": {"content_type": "music"},
                "usb": {"patterns": list(patterns)}}}})
        self.pm, registry = get_pluginmanager()  # as ``syncd run`` does: with the hooks
        self.engine = Engine(store, resolve_jobs(self.config, registry, "t.toml"), self.state,
                             pm=self.pm)
        self.monitor = UsbMonitor(self.engine, FileIngestor(self.engine), self.config)
        self.store = store

    @staticmethod
    def runs() -> list[SyncRun]:
        return list(SyncRun.select().where(SyncRun.trigger == "usb").order_by(SyncRun.id))

    def finished(self, status: str) -> list[SyncRun]:
        return [r for r in self.runs() if r.status == status]

    def rows(self) -> list[tuple]:
        try:
            return self.store.db.execute_sql(
                "SELECT external_id, title, content_type FROM content_index ORDER BY 1"
            ).fetchall()
        except Exception:  # no run wrote anything: the table was never made
            return []

    def copies(self) -> list[Path]:
        """The files under state_dir/usb (walked safely while the monitor deletes some)."""
        return sorted(Path(folder, name)
                      for folder, _, names in os.walk(self.state / "usb") for name in names)

    def errors(self, run: SyncRun) -> list[tuple[str, str, str, str]]:
        return [(e.error_type, e.error_code, e.item_identifier, e.error_message)
                for e in self.store.errors_of(run.id)]


@pytest.fixture
async def rig(store: Store, tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(label: str, **options: Any) -> Rig:
        r = Rig(store, tmp_path, label, **options)
        made.append(r)
        return r

    yield make
    for r in made:
        await r.monitor.stop()
        await r.engine.shutdown()


async def probed(dev: str) -> dict[str, str]:
    """The udev properties of ``dev`` once udev has probed its filesystem."""
    props: dict[str, str] = {}

    def ready() -> bool:
        props.update(pyudev.Devices.from_device_file(pyudev.Context(), dev).properties)
        return "ID_FS_UUID" in props

    await wait_for(ready, DRIVE_TIMEOUT)
    return props


def without_insertion(device: str) -> dict[str, Any]:
    """A run's drive, less the insertion key (boot id and DISKSEQ) a restart checks."""
    info = json.loads(device)
    info.pop("insertion", None)
    return dict(info)


def media_mounts(state: Path) -> list[MountEntry]:
    return [e for e in mount_entries() if e.mount_point.is_relative_to(state / "media")]


# -- real drives ------------------------------------------------------------------------


async def test_a_drive_is_mounted_read_only_copied_off_imported_and_unmounted(
        rig, loops, tmp_path):
    label = unique_label()
    r = rig(label, max_file_mb=1)
    seen: list[MountEntry] = []
    r.monitor.chunk_callback = lambda item, copied: seen.extend(media_mounts(r.state))
    await r.monitor.start()
    assert r.monitor.listening
    files = {"music/a.csv": A_CSV, "music/big.csv": HEADER.encode() + b"9,x,y,z\n" * 200_000,
             "music/notes.txt": b"not a csv", "music/deeper/d.csv": HEADER.encode(),
             "other/c.csv": HEADER.encode() + b"7,Other,X,Y\n"}
    links = {"music/evil.csv": "/etc/passwd", "other/x.csv": "/etc/shadow"}
    decoy_image = tmp_path / "decoy.img"
    make_image(decoy_image, label + "x", files, links)
    image = tmp_path / "drive.img"
    fs_uuid = make_image(image, label, files, links)

    loops.attach(decoy_image)  # another drive: not matched by [usb].match, never touched
    dev = loops.attach(image)
    # done: both runs recorded, and the copy deleted once its run completed
    await wait_for(lambda: r.finished("completed") and r.finished("failed")
                   and not r.copies(), DRIVE_TIMEOUT)

    # mounted read-only, nosuid, nodev, noexec (+ nosymfollow) under state_dir/media
    assert seen, "the drive was never seen mounted while copied"
    mount = seen[0]
    assert mount.mount_point == r.state / "media" / label
    assert mount.fstype == "ext4" and os.path.realpath(mount.source) == os.path.realpath(dev)
    assert set(READONLY_OPTIONS) <= set(mount.options)
    assert ("nosymfollow" in mount.options) == kernel_has_nosymfollow()
    assert "rw" not in mount.options
    # unmounted, and its mount point gone, before the run
    assert not mounts_of(dev) and not media_mounts(r.state)
    assert not (r.state / "media" / label).exists()

    # a.csv imported through the copy, with the drive on the run
    device = {"label": label, "uuid": fs_uuid, "serial": None, "devnode": dev}
    [done] = r.finished("completed")
    assert without_insertion(done.device) == device
    assert done.source_identifier.endswith("/music/a.csv")
    assert done.source_identifier.startswith(str(r.state / "usb"))
    assert (done.items_inserted, done.items_failed) == (2, 0)
    assert r.rows() == [("1", "Song A", "music"), ("2", "Song B", "music")]
    assert [f.sync_run_id for f in IngestedFile.select()] == [done.id]

    # the link and the oversized file refused, each with an error naming it
    [refused] = r.finished("failed")
    assert without_insertion(refused.device) == device
    assert "refused" in refused.error_message
    errors = sorted(r.errors(refused), key=lambda e: e[2])
    assert [(t, code, item) for t, code, item, _ in errors] == [
        ("validation", "refused_too_large", "music/big.csv"),
        ("validation", "refused_symlink", "music/evil.csv")]
    assert "max_file_mb" in errors[0][3]
    assert "/etc/passwd leaves the drive" in errors[1][3]

    # nothing from the decoy, nothing outside the pattern; the used copy is deleted
    assert all(json.loads(run.device)["label"] == label for run in r.runs())
    assert len(r.runs()) == 2


async def test_a_drive_pulled_out_while_copied_imports_nothing(rig, loops, tmp_path):
    label = unique_label()
    r = rig(label)
    image = tmp_path / "drive.img"
    big = HEADER + "".join(f"{i},Song {i},Artist {i},Genre\n" for i in range(300_000))
    assert len(big) > 8 * 2**20  # far beyond any read-ahead
    make_image(image, label, {"music/a.csv": A_CSV, "music/big.csv": big.encode()},
               size_mb=40)
    pulled = threading.Event()
    dev: dict[str, str] = {}

    def pull_out(item: PurePosixPath, copied: int) -> None:
        if item == PurePosixPath("music/big.csv") and not pulled.is_set():
            pulled.set()  # after big.csv's first chunk, the drive goes away
            subprocess.run([tool("losetup"), "-d", dev["node"]], check=True)
            os.truncate(image, 0)  # every read not yet cached now fails with EIO

    r.monitor.chunk_callback = pull_out
    await r.monitor.start()
    dev["node"] = loops.attach(image)
    await wait_for(lambda: r.finished("failed"), DRIVE_TIMEOUT)

    assert pulled.is_set()
    [run] = r.runs()
    assert run.status == "failed" and run.trigger == "usb"
    assert run.error_message.startswith("drive removed during copy: music/big.csv")
    assert json.loads(run.device)["label"] == label
    [(kind, code, item, _)] = r.errors(run)
    assert (kind, code, item) == ("system", "drive_removed", "music/big.csv")
    # nothing imported (not even a.csv, copied before), no copy left behind
    assert r.rows() == [] and IngestedFile.select().count() == 0
    assert not r.copies() and not list((r.state / "usb").glob("*/*.partial"))
    # unmounted, so the detached loop device is finally released
    await wait_for(lambda: not media_mounts(r.state), DRIVE_TIMEOUT)
    await wait_for(lambda: not Loops.devices_of(image), DRIVE_TIMEOUT)


async def test_an_inventory_job_lists_the_drive_and_marks_what_left_it(
        store, loops, tmp_path):
    """An inventory job gets the drive's listing; a file gone next time is unavailable."""
    label = unique_label()
    state = tmp_path / "state"
    config = validate({
        "daemon": {"state_dir": str(state)},
        "usb": {"match": {"ID_FS_LABEL": label}},
        "jobs": {"media": {
            "source": {"type": "inventory"}, "on_missing": "mark_unavailable",
            "target": {"type": "sql", "table": "media", "key": ["external_id"]},
            "mapping": {"external_id": "id", "title": "title", "artist": "artist",
                        "kind": "media_type"},
            "usb": {"patterns": ["**/*"]}}}})
    pm, registry = get_pluginmanager()
    engine = Engine(store, resolve_jobs(config, registry, "t.toml"), state, pm=pm)
    monitor = UsbMonitor(engine, FileIngestor(engine), config)
    await monitor.start()

    def media() -> list[tuple]:
        runs = [r for r in SyncRun.select().where(SyncRun.job == "media")]
        if not runs or any(r.status != "completed" for r in runs):
            return []
        return store.db.execute_sql("SELECT title, artist, kind, is_available FROM media "
                                    "ORDER BY title").fetchall()

    try:
        files = {"Artist/Album/01 - First.mp3": b"x", "Band - Second.flac": b"y"}
        first = tmp_path / "one.img"
        drive_uuid = make_image(first, label, files)
        dev = loops.attach(first)
        await wait_for(lambda: len(media()) == 2, DRIVE_TIMEOUT)
        assert media() == [("First", "Artist", "audio", 1), ("Second", "Band", "audio", 1)]
        loops.detach(dev)

        second = tmp_path / "two.img"  # the same drive, one file fewer
        make_image(second, label, {"Band - Second.flac": b"y"}, fs_uuid=drive_uuid)
        loops.attach(second)
        await wait_for(lambda: SyncRun.select().where(SyncRun.job == "media",
                                                      SyncRun.status == "completed").count()
                       == 2 and media()[0][3] == 0, DRIVE_TIMEOUT)
        assert media() == [("First", "Artist", "audio", 0), ("Second", "Band", "audio", 1)]
        [run] = [r for r in SyncRun.select().where(SyncRun.job == "media")][-1:]
        assert run.items_missing == 1 and json.loads(run.device)["label"] == label
    finally:
        await monitor.stop()
        await engine.shutdown()


async def test_a_drive_replugged_with_the_same_uuid_is_read_even_if_its_removal_was_missed(
        rig, loops, tmp_path):
    """udev probes a removal when it handles it, possibly after the re-plug: the removal
    then looks like the drive still there. The kernel's DISKSEQ tells the insertions apart."""
    label = unique_label()
    first = tmp_path / "one.img"
    drive_uuid = make_image(first, label, {"music/a.csv": A_CSV})
    dev = loops.attach(first)
    r = rig(label)
    before = await probed(dev)
    r.monitor.on_event("change", dev, before)
    await wait_for(lambda: r.finished("completed") and not r.copies(), DRIVE_TIMEOUT)
    loops.detach(dev)  # its events never reach the monitor
    second = tmp_path / "two.img"
    make_image(second, label, {"music/a.csv": A_CSV + b"3,Song C,Artist,Jazz\n"},
               fs_uuid=drive_uuid)
    loops.attach_to(dev, second)
    after = await probed(dev)
    assert after["ID_FS_UUID"] == before["ID_FS_UUID"] and "DISKSEQ" in after
    assert after["DISKSEQ"] != before["DISKSEQ"]
    r.monitor.on_event("change", dev, before)  # the removal, probed late: still ext4
    r.monitor.on_event("change", dev, after)
    r.monitor.on_event("change", dev, after)  # the same re-plug again: taken once
    await wait_for(lambda: len(r.finished("completed")) == 2 and not r.copies(), DRIVE_TIMEOUT)
    assert r.rows()[-1] == ("3", "Song C", "music") and len(r.runs()) == 2


async def test_a_new_medium_waits_for_the_last_one_to_be_done_and_is_never_dropped(
        store, tmp_path):
    """A re-plug seen while the last insertion is still being finished (a busy machine:
    its copies are being pruned) is taken after it, not dropped as "seen again"."""
    r = Rig(store, tmp_path, "MUSIC")
    props = {"ID_FS_TYPE": "ext4", "ID_FS_LABEL": "MUSIC", "ID_FS_UUID": "u1"}
    dev = "/dev/nonexistent"
    r.monitor.on_event("add", dev, {**props, "DISKSEQ": "7"})
    first = r.monitor._tasks[dev]
    r.monitor.on_event("remove", dev, {"DISKSEQ": "7"})
    r.monitor.on_event("add", dev, {**props, "DISKSEQ": "9"})  # before the first is done
    second = r.monitor._tasks[dev]
    assert second is not first and not first.done()
    r.monitor.on_event("change", dev, {**props, "DISKSEQ": "9"})  # seen again: ignored
    r.monitor.on_event("remove", dev, {"DISKSEQ": "7"})  # the first's, late: ignored
    assert r.monitor._tasks[dev] is second and not r.monitor._aborts[dev].is_set()
    await asyncio.gather(first, second)
    # neither could be mounted (no such device): one failed run per insertion, in order
    assert [run.status for run in r.runs()] == ["failed", "failed"]
    assert dev not in r.monitor._tasks
    await r.monitor.stop()
    await r.engine.shutdown()


async def test_an_automounted_drive_is_read_where_it_is_and_left_mounted(
        rig, loops, tmp_path):
    label = unique_label()
    image = tmp_path / "drive.img"
    make_image(image, label, {"music/a.csv": A_CSV})
    dev = loops.attach(image)  # no monitor listens yet
    automount = tmp_path / "automount"
    mount_readonly(dev, "ext4", automount)  # as an automounter would have
    try:
        r = rig(label)
        props = await probed(dev)
        r.monitor.on_event("add", dev, props)
        r.monitor.on_event("change", dev, props)  # the same insertion again: ignored
        await wait_for(lambda: r.finished("completed") and not r.copies(), DRIVE_TIMEOUT)
        assert find_mount(dev) == automount  # not ours to unmount
        assert not (r.state / "media").exists()
        assert r.rows() == [("1", "Song A", "music"), ("2", "Song B", "music")]
        assert len(r.runs()) == 1
    finally:
        unmount(automount)


async def test_a_drive_that_cannot_be_mounted_fails_each_job_with_the_reason(
        rig, loops, tmp_path):
    label = unique_label()
    image = tmp_path / "drive.img"
    make_image(image, label, {"music/a.csv": A_CSV})
    dev = loops.attach(image)
    r = rig(label)
    props = await probed(dev)
    r.monitor.on_event("add", dev, {**props, "ID_FS_TYPE": "vfat"})  # udev got it wrong
    await wait_for(lambda: r.finished("failed"), DRIVE_TIMEOUT)
    [run] = r.runs()
    assert run.error_message.startswith(f"cannot mount {dev} (vfat) read-only")
    assert [e[:2] for e in r.errors(run)] == [("system", "mount_failed")]
    assert json.loads(run.device)["uuid"] == props["ID_FS_UUID"]
    assert not mounts_of(dev) and not list((r.state / "media").iterdir())


async def test_a_drive_that_failed_reaches_events_metrics_and_plugins(rig, loops, tmp_path):
    """A run that failed before anything was read is announced like any other run."""
    label = unique_label()
    image = tmp_path / "drive.img"
    make_image(image, label, {"music/a.csv": A_CSV})
    dev = loops.attach(image)
    r = rig(label)
    finished: list[tuple[int, str]] = []

    class Heard:
        @hookimpl
        def syncd_run_finished(self, summary: Any) -> None:
            finished.append((summary.run_id, summary.status))

    r.pm.register(Heard())
    hub, metrics = EventHub(), Metrics(r.engine, r.store)
    events: asyncio.Queue[Any] = asyncio.Queue()
    hub.subscribers.add(events)  # what a /v1/events client receives
    r.engine.listeners.extend([hub, metrics])
    props = await probed(dev)
    r.monitor.on_event("add", dev, {**props, "ID_FS_TYPE": "vfat"})  # cannot be mounted
    await wait_for(lambda: r.finished("failed") and finished, DRIVE_TIMEOUT)
    [run] = r.runs()
    assert finished == [(run.id, "failed")]
    got = [events.get_nowait() for _ in range(events.qsize())]
    assert [(kind, data["runId"], data.get("status")) for kind, data in got] == [
        ("run_started", run.id, None), ("run_finished", run.id, "failed")]
    scraped = (await metrics.render()).decode()
    assert 'syncd_runs_finished_total{job="music",status="failed"} 1.0' in scraped


async def test_mount_readonly_is_read_only_nosuid_nodev_noexec(loops, tmp_path):
    image = tmp_path / "drive.img"
    make_image(image, unique_label(), {"music/a.csv": A_CSV},
               links={"music/evil.csv": "/etc/passwd"})
    dev = loops.attach(image)
    target = tmp_path / "media" / "drive"
    options = mount_readonly(dev, "ext4", target)
    try:
        assert find_mount(dev) == target
        [entry] = mounts_of(dev)
        assert set(options) <= set(entry.options)
        assert set(READONLY_OPTIONS) <= set(entry.options)
        assert (target / "music" / "a.csv").read_bytes() == A_CSV
        with pytest.raises(OSError) as written:
            (target / "new.txt").write_text("x")
        assert written.value.errno == errno.EROFS
        if "nosymfollow" in options:
            with pytest.raises(OSError) as followed:
                (target / "music" / "evil.csv").read_text()
            assert followed.value.errno == errno.ELOOP
    finally:
        unmount(target)
    assert find_mount(dev) is None


async def test_a_disabled_monitor_does_not_listen(store, tmp_path):
    r = Rig(store, tmp_path, unique_label(), enabled=False)
    await r.monitor.start()
    assert not r.monitor.listening
    await r.monitor.stop()


async def test_only_new_wanted_drives_with_a_filesystem_and_a_job_are_taken(store, tmp_path):
    def taken(r: Rig, action: str, **props: str) -> bool:
        before = asyncio.all_tasks()
        r.monitor.on_event(action, "/dev/nonexistent", {
            "ID_FS_TYPE": "ext4", "ID_FS_LABEL": "MUSIC", "ID_FS_UUID": "u1", **props})
        return asyncio.all_tasks() != before

    no_jobs = Rig(store, tmp_path, "MUSIC", patterns=())
    assert not taken(no_jobs, "add")  # no job has usb.patterns
    r = Rig(store, tmp_path, "MUSIC")
    assert not taken(r, "add", ID_FS_LABEL="OTHER")  # not matched by [usb].match
    assert not taken(r, "add", ID_FS_TYPE="")  # no filesystem
    assert not taken(r, "add", ID_FS_USAGE="crypto")  # an encrypted volume
    assert not taken(r, "bind")
    assert taken(r, "add")
    assert not taken(r, "change")  # the same insertion, still being read
    await r.monitor.stop()
    assert not taken(r, "change")  # the same insertion, already read
    r.monitor.on_event("remove", "/dev/nonexistent", {})
    assert taken(r, "add")  # plugged in again
    await r.monitor.stop()
    await r.engine.shutdown()


# -- the helpers, on plain folders -------------------------------------------------------


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            os.symlink(data, path)
        else:
            path.write_bytes(data)
    return root


def rel(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_patterns_are_globs_relative_to_the_drive_root(tmp_path):
    root = tree(tmp_path / "d", {"top.csv": b"", "music/a.csv": b"", "music/b.txt": b"",
                                 "music/sub/c.csv": b"", "x/music/d.csv": b""})
    assert rel(root, find_files(root, ["music/*.csv"], 100)[0]) == ["music/a.csv"]
    assert rel(root, find_files(root, ["*.csv"], 100)[0]) == ["top.csv"]
    assert rel(root, find_files(root, ["/music/**/*.csv"], 100)[0]) == [
        "music/a.csv", "music/sub/c.csv"]
    assert rel(root, find_files(root, ["**/*.csv"], 100)[0]) == [
        "music/a.csv", "music/sub/c.csv", "top.csv", "x/music/d.csv"]
    assert rel(root, find_files(root, ["music/*.csv", "x/*/*.csv"], 100)[0]) == [
        "music/a.csv", "x/music/d.csv"]


def test_symbolic_links_are_refused_never_followed(tmp_path):
    root = tree(tmp_path / "d", {
        "music/a.csv": b"1", "music/out.csv": "/etc/passwd", "music/in.csv": "a.csv",
        "music/up.csv": "../../secret.csv", "music/linked": "/etc",
        "music/readme": "/etc/passwd", "other/x.csv": "/etc/shadow"})
    found, refused = find_files(root, ["music/*.csv", "music/linked/*"], 100)
    assert rel(root, found) == ["music/a.csv"]
    reasons = {r.path: (r.code, r.reason) for r in refused}
    assert set(reasons) == {"music/out.csv", "music/in.csv", "music/up.csv", "music/linked"}
    assert all(code == "symlink" for code, _ in reasons.values())
    assert "/etc/passwd leaves the drive" in reasons["music/out.csv"][1]
    assert "leaves the drive" in reasons["music/up.csv"][1]
    assert "leaves the drive" in reasons["music/linked"][1]
    assert "leaves" not in reasons["music/in.csv"][1]


def test_oversized_and_special_files_are_refused(tmp_path):
    root = tree(tmp_path / "d", {"music/ok.csv": b"x" * 10, "music/big.csv": b"x" * 11})
    os.mkfifo(root / "music" / "pipe.csv")
    found, refused = find_files(root, ["music/*.csv"], max_file_bytes=10)
    assert rel(root, found) == ["music/ok.csv"]
    assert sorted((r.path, r.code) for r in refused) == [
        ("music/big.csv", "too_large"), ("music/pipe.csv", "special_file")]


def test_a_name_that_is_not_utf8_is_refused_and_shown_as_text(tmp_path):
    """``caf\\xe9.csv`` on a drive written by an old Latin-1 system: refused by a name a
    run can record (Python gives such a name back with surrogates, which no database
    takes); so is a link with such a name."""
    latin, link = os.fsdecode(b"music/caf\xe9.csv"), os.fsdecode(b"music/l\xe9.csv")
    root = tree(tmp_path / "d", {"music/ok.csv": b"1", latin: b"2", link: "/etc/passwd"})
    found, refused = find_files(root, ["music/*.csv"], 100)
    assert rel(root, found) == ["music/ok.csv"]
    assert sorted((r.path, r.code) for r in refused) == [
        ("music/caf\\xe9.csv", "name_not_utf8"), ("music/l\\xe9.csv", "symlink")]
    for refusal in refused:
        str(refusal).encode("utf-8")  # text a run can store


def test_the_walk_is_bounded_in_depth_and_count(tmp_path):
    deep = "/".join(f"d{i}" for i in range(20))
    root = tree(tmp_path / "d", {f"{deep}/deep.csv": b"", "d0/shallow.csv": b"",
                                 **{f"many/{i:02}.csv": b"" for i in range(30)}})
    found, refused = find_files(root, ["d0/**/*.csv"], 100, max_depth=5)
    assert rel(root, found) == ["d0/shallow.csv"]
    assert [(r.path, r.code) for r in refused] == [("d0/d1/d2/d3/d4", "too_deep")]

    found, refused = find_files(root, ["many/*.csv"], 100, max_files=10)
    assert rel(root, found) == [f"many/{i:02}.csv" for i in range(10)]
    assert [r.code for r in refused] == ["too_many"]


def test_copy_off_keeps_paths_and_times_and_leaves_nothing_half_done(tmp_path):
    root = tree(tmp_path / "d", {"music/a.csv": A_CSV, "music/sub/b.csv": b"x" * 3_000_000})
    os.utime(root / "music" / "a.csv", (1_600_000_000, 1_600_000_000))
    files = [root / "music" / "a.csv", root / "music" / "sub" / "b.csv"]
    dest = tmp_path / "usb" / "drive" / "t1"
    copies = copy_off(files, root, dest)
    assert rel(dest, copies) == ["music/a.csv", "music/sub/b.csv"]
    assert copies[0].read_bytes() == A_CSV and copies[1].stat().st_size == 3_000_000
    assert copies[0].stat().st_mtime == 1_600_000_000
    assert not dest.with_name("t1.partial").exists()

    removed = threading.Event()
    chunks: list[tuple[str, int]] = []

    def unplug(item: PurePosixPath, copied: int) -> None:
        chunks.append((str(item), copied))
        if item.name == "b.csv":
            removed.set()  # udev said "remove" while b.csv was copied

    dest = tmp_path / "usb" / "drive" / "t2"
    with pytest.raises(DriveRemoved, match=r"drive removed during copy: music/sub/b\.csv"):
        copy_off(files, root, dest, removed=removed, chunk_callback=unplug)
    assert chunks == [("music/a.csv", len(A_CSV)), ("music/sub/b.csv", 2**20)]
    assert not dest.exists() and not dest.with_name("t2.partial").exists()


def test_mountinfo_is_parsed_with_its_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "42 27 7:3 / /media/My\\040Drive ro,nosuid,nodev,noexec - vfat /dev/loop3 ro\n"
        "43 27 7:3 /sub /bound rw - vfat /dev/loop3 rw\n")
    [entry] = [e for e in mount_entries(info) if e.device == "7:3" and e.root == "/"]
    assert entry.mount_point == Path("/media/My Drive")
    assert entry.options == ("ro", "nosuid", "nodev", "noexec")
    assert (entry.fstype, entry.source) == ("vfat", "/dev/loop3")
    assert find_mount("/dev/loop3", info) == Path("/media/My Drive")
    assert find_mount("/dev/nonexistent", info) is None


def test_matching_names_and_kernels():
    props = {"ID_BUS": "usb", "ID_FS_LABEL": "MUSIC", "ID_FS_TYPE": "vfat"}
    assert wanted(props, {"ID_BUS": "usb"})
    assert wanted(props, {"ID_BUS": "usb", "ID_FS_LABEL": "MUSIC"})
    assert not wanted(props, {"ID_BUS": "usb", "ID_FS_LABEL": "OTHER"})
    assert not wanted({"ID_FS_TYPE": "ext4"}, {"ID_BUS": "usb"})
    assert wanted(props, {})
    assert safe_name("My Drive/../x", "uuid") == "My_Drive_.._x"
    assert safe_name("", "..", "1234-ABCD") == "1234-ABCD"
    assert safe_name(None, default="drive") == "drive"
    assert not kernel_has_nosymfollow("5.9.16")
    assert kernel_has_nosymfollow("5.10.0-28-amd64")
    assert kernel_has_nosymfollow("6.18.44")
