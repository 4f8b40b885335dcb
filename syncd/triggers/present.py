"""Drives already plugged in when the daemon starts: seen once, not imported twice.

udev only announces changes, so a drive inserted while the daemon was down (or during
a restart) would wait for its next re-plug. At start the monitor lists the block
devices present and treats each as just inserted, unless this very insertion was
already taken before the restart: a run's ``device`` records ``insertion``, the boot's
id and the kernel's ``DISKSEQ`` of the medium, which no other insertion shares. Without
``DISKSEQ`` (kernels before 5.15) the drive is read again and the per-file sha256
check of :class:`~syncd.triggers.ingest.FileIngestor` keeps its files from being
imported twice.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pyudev

from syncd.store import Store

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@cache
def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def insertion_key(diskseq: str | None) -> str | None:
    """``<boot id>/<DISKSEQ>``: one insertion of one medium, unique until the end of time."""
    boot = boot_id()
    if not diskseq or not diskseq.isdigit() or boot is None:
        return None
    return f"{boot}/{diskseq}"


def present_devices() -> list[tuple[str, dict[str, str]]]:
    """Block devices holding a filesystem now: device node and udev properties."""
    found = []
    for device in pyudev.Context().list_devices(subsystem="block"):
        props = dict(device.properties)
        if device.device_node and props.get("ID_FS_TYPE"):
            found.append((device.device_node, props))
    return found


def taken_before(store: Store, key: str) -> bool:
    """Did a run already come from this insertion (before a restart)?"""
    return store.insertion_taken(key)
