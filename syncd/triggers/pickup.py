"""What comes off a drive besides the copies: the files plugins make, and the clean-up.

Plugins take part through ``syncd_drive_inserted`` while the drive is mounted; what
they write is staged, then moved beside the copies so that one folder holds all of
an insertion's files until their runs are done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import structlog

from syncd.engine import Engine
from syncd.hookspecs import DriveInfo, DriveJob
from syncd.triggers.drive import DriveError
from syncd.triggers.insertions import Drive

log = structlog.get_logger("syncd.usb")


def plugins_take_part(engine: Engine, root: Path, drive: Drive, jobs: dict[str, list[str]],
                      dest: Path) -> dict[str, list[Path]]:
    """The files plugins made for the jobs they took (e.g. an inventory's listing)."""
    pm = engine.pm
    if pm is None:
        return {}
    info = DriveInfo(name=drive.name, devnode=drive.devnode, fstype=drive.fstype,
                     label=drive.label, uuid=drive.uuid, serial=drive.serial,
                     device=dict(drive.info))
    wanting = [DriveJob(job, engine.plans[job].source_cls.name, tuple(patterns))
               for job, patterns in jobs.items()]
    try:
        answers = pm.hook.syncd_drive_inserted(drive=info, root=root, jobs=wanting,
                                               dest=dest)
    except (DriveError, OSError):
        raise
    except Exception as exc:
        log.exception("a syncd_drive_inserted hook failed", drive=drive.name)
        raise DriveError(f"a plugin failed on drive {drive.name}: {exc}") from exc
    taken: dict[str, list[Path]] = {}
    for answer in answers:
        for job, files in (answer or {}).items():
            if job in jobs and job not in taken:
                taken[job] = [Path(f) for f in files]
    return taken


def move_in(taken: dict[str, list[Path]], staging: Path, dest: Path
            ) -> dict[str, list[Path]]:
    """Move the files plugins wrote in ``staging`` into ``dest``, beside the copies."""
    moved: dict[str, list[Path]] = {}
    for job, files in taken.items():
        moved[job] = []
        for file in files:
            if file.is_relative_to(staging):
                target = dest / file.relative_to(staging)
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.replace(file, target)
                file = target
            moved[job].append(file)
    shutil.rmtree(staging, ignore_errors=True)
    return moved


def prune(dest: Path, keep: set[Path], stop_at: Path) -> None:
    """Delete the copies not in ``keep``, then the folders that left empty."""
    for folder, _, names in os.walk(dest, topdown=False):
        for name in names:
            path = Path(folder, name)
            if path not in keep:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    parent = dest.parent
    while parent != stop_at and parent.is_relative_to(stop_at):
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent

