"""Which udev block events are new insertions of a wanted drive.

The kernel gives each medium put in a block device a new ``DISKSEQ`` (Linux >= 5.15;
never reused until reboot), carried by every event of that insertion. A drive
re-plugged with the same filesystem UUID is therefore a new insertion even when its
removal was never seen as one: udev probes a removal's filesystem when it handles the
event, which may be after the re-plug (the removal then still shows the filesystem),
and netlink events can be lost. Without ``DISKSEQ`` (older kernels) the device node and
filesystem UUID stand in, and a re-plug is noticed only after its removal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from syncd.triggers.present import insertion_key


def wanted(properties: Mapping[str, str], match: Mapping[str, str]) -> bool:
    """Does a device with these udev properties have every ``[usb].match`` item?"""
    return all(properties.get(key) == value for key, value in match.items())


@dataclass(frozen=True, slots=True)
class Drive:
    """A block device holding a filesystem, as udev described it."""

    devnode: str
    fstype: str
    label: str | None
    uuid: str | None
    serial: str | None
    diskseq: str | None = None  # the kernel's number for this medium (Linux >= 5.15)

    @classmethod
    def from_properties(cls, devnode: str, props: Mapping[str, str]) -> Drive:
        return cls(devnode, props.get("ID_FS_TYPE", ""), props.get("ID_FS_LABEL") or None,
                   props.get("ID_FS_UUID") or None,
                   props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL") or None,
                   props.get("DISKSEQ") or None)

    @property
    def info(self) -> dict[str, str | None]:
        """What a run records about the drive (``sync_runs.device``)."""
        info = {"label": self.label, "uuid": self.uuid, "serial": self.serial,
                "devnode": self.devnode}
        key = insertion_key(self.diskseq)
        if key is not None:  # tells a restarted daemon this insertion was taken
            info["insertion"] = key
        return info

    @property
    def name(self) -> str:
        return self.label or self.uuid or os.path.basename(self.devnode)

    @property
    def identity(self) -> tuple[str, str | None]:
        """One insertion of a medium: its events share it, a re-insertion does not."""
        return self.devnode, f"diskseq {self.diskseq}" if self.diskseq else self.uuid


def _diskseq(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


class Insertions:
    """The insertion taken last on each device node, to tell new ones from repeats."""

    def __init__(self) -> None:
        self._present: dict[str, tuple[str, str | None]] = {}  # devnode -> identity taken
        self._newest: dict[str, int] = {}  # devnode -> DISKSEQ of the newest medium taken

    def is_new(self, drive: Drive) -> bool:
        """Not an event of an insertion already taken, nor of an earlier medium."""
        seq = _diskseq(drive.diskseq)
        if seq is not None:  # the numbers only grow: an older one is a late event
            return seq > self._newest.get(drive.devnode, -1)
        return self._present.get(drive.devnode) != drive.identity

    def take(self, drive: Drive) -> None:
        self._present[drive.devnode] = drive.identity
        seq = _diskseq(drive.diskseq)
        if seq is not None:
            self._newest[drive.devnode] = seq

    def removed(self, devnode: str, props: Mapping[str, str]) -> bool:
        """Forget the drive on ``devnode``; False for a late removal of an earlier medium."""
        seq = _diskseq(props.get("DISKSEQ"))
        if seq is not None and seq < self._newest.get(devnode, -1):
            return False
        self._present.pop(devnode, None)
        return True
