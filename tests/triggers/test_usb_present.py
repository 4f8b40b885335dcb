"""Drives plugged in before the daemon started: taken at start, once per insertion.

The scan's choice is checked on the monitor's event entry point (any machine); the
whole path, with a real loop device mounted and imported, runs where udev does (see
``tests/triggers/test_usb.py``) and skips elsewhere with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncd.store import Store
from syncd.store.models import SyncRun
from syncd.triggers import present, usb
from tests.poll import wait_for
from tests.triggers.test_usb import (
    A_CSV,
    DRIVE_TIMEOUT,
    Loops,
    Rig,
    loops,
    make_image,
    probed,
    udev,
    unique_label,
)

__all__ = ["loops", "udev"]  # fixtures

PROPS = {"ID_FS_TYPE": "ext4", "ID_FS_LABEL": "MUSIC", "ID_FS_UUID": "u1", "DISKSEQ": "77"}


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The drives "present" are PROPS on /dev/fake0; events reaching the monitor logged."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(usb, "present_devices", lambda: [("/dev/fake0", dict(PROPS))])
    monkeypatch.setattr(usb.UsbMonitor, "on_event",
                        lambda self, action, devnode, props: calls.append((action, devnode)))
    return calls


async def test_a_drive_present_at_start_is_taken_like_an_insertion(
        store: Store, tmp_path: Path, scanned: list[tuple[str, str]]) -> None:
    r = Rig(store, tmp_path, "MUSIC")
    await r.monitor.scan_present()
    assert scanned == [("add", "/dev/fake0")]


async def test_a_drive_taken_before_a_restart_is_not_taken_again(
        store: Store, tmp_path: Path, scanned: list[tuple[str, str]]) -> None:
    if present.insertion_key("77") is None:
        pytest.skip("no boot id in /proc: insertions cannot be told apart across restarts")
    r = Rig(store, tmp_path, "MUSIC")
    drive = usb.Drive.from_properties("/dev/fake0", PROPS)
    run_id = await r.engine.record_skipped("music", "usb", "x.csv", "test", device=drive.info)
    assert present.insertion_key("77") in str(SyncRun.get_by_id(run_id).device)
    await r.monitor.scan_present()
    assert scanned == []
    # and its later udev events (a "change" of the same medium) are not a new insertion
    assert not r.monitor._insertions.is_new(drive)
    # a re-plug is a new medium (a higher DISKSEQ): taken
    assert r.monitor._insertions.is_new(usb.Drive.from_properties(
        "/dev/fake0", {**PROPS, "DISKSEQ": "78"}))


def test_insertions_differ_by_boot_and_medium() -> None:
    key = present.insertion_key("5")
    if key is None:
        pytest.skip("no boot id in /proc")
    assert key.endswith("/5") and key != present.insertion_key("6")
    assert present.insertion_key(None) is None and present.insertion_key("x") is None


async def test_a_real_drive_plugged_in_before_start_is_imported_once(
        store: Store, tmp_path: Path, loops: Loops) -> None:
    label = unique_label()
    image = tmp_path / "drive.img"
    make_image(image, label, {"music/a.csv": A_CSV})
    dev = loops.attach(image)
    await probed(dev)  # udev has seen it: it is "already plugged in"

    first = Rig(store, tmp_path, label)
    await first.monitor.start()
    await wait_for(lambda: first.finished("completed") and not first.copies(), DRIVE_TIMEOUT)
    await first.monitor.stop()
    await first.engine.shutdown()
    assert len(first.runs()) == 1 and first.runs()[0].items_inserted == 2

    second = Rig(store, tmp_path, label)  # the daemon restarted, the drive still in
    await second.monitor.start()
    assert not second.monitor._tasks  # the scan ran in start() and took nothing
    await second.monitor.stop()
    await second.engine.shutdown()
    runs: list[Any] = second.runs()
    assert len(runs) == 1, [(r.id, r.status, r.error_message) for r in runs]
