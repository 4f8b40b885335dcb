"""Taking a watched file out of the inbox once its run is over, without trusting the inbox.

Whoever drops files can write to the inbox, and the daemon may run as root, so nothing
here follows a link: ``processed/`` and ``failed/`` are opened as real folders (a link
planted in their place is refused), a file is archived or deleted only while it is
still the very inode that was checked and read (a file replaced meanwhile is left for
the watcher to take as a new arrival), and the report beside a failed file is created
anew, never written through a link.
"""

from __future__ import annotations

import json
import os
import stat as st
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from syncd.terms import file_stamp, utc_iso
from syncd.triggers.ingest import Checked

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
REPORT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Replaced(Exception):
    """The inbox name no longer is the file that was read: it is a new arrival."""


def stamp() -> str:
    return file_stamp()


@contextmanager
def subfolder(inbox: Path, name: str) -> Iterator[int]:
    """A descriptor of ``inbox/name``, made if missing; a link there raises OSError."""
    with suppress(FileExistsError):
        os.mkdir(inbox / name, 0o755)
    fd = os.open(inbox / name, DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _current(path: Path, file: Checked | None, refused: bool = False
             ) -> os.stat_result | None:
    """``path`` as it is now (None if gone); Replaced unless it is still ``file`` (or,
    ``refused``, still not a regular file)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return None
    if (file is not None and not file.same_file(now)) or (
            refused and st.S_ISREG(now.st_mode)):
        raise Replaced(path)
    return now


def _unlink_if_same(path: Path, now: os.stat_result) -> None:
    try:
        again = os.lstat(path)
    except FileNotFoundError:
        return
    if (again.st_dev, again.st_ino) != (now.st_dev, now.st_ino):
        raise Replaced(path)
    os.unlink(path)


def _exists(name: str, fd: int) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _linked_already(fd: int, now: os.stat_result, name: str) -> bool:
    """Is the file already in ``processed/`` (linked there before a crash)?"""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.name.endswith("-" + name):
                linked = entry.stat(follow_symlinks=False)
                if (linked.st_dev, linked.st_ino) == (now.st_dev, now.st_ino):
                    return True
    return False


def archive(path: Path, file: Checked) -> None:
    """Move ``path`` to ``processed/STAMP-NAME`` if it is still ``file``."""
    now = _current(path, file)
    if now is None:
        return
    with subfolder(path.parent, "processed") as fd:
        if now.st_nlink > 1 and _linked_already(fd, now, path.name):
            _unlink_if_same(path, now)
            return
        target = f"{stamp()}-{path.name}"
        # link + unlink, not rename: a move out of the watched folder leaves watchdog
        # an unpaired event it holds for 0.5 s, delaying the next file's event
        os.link(path, target, dst_dir_fd=fd, follow_symlinks=False)
        linked = os.stat(target, dir_fd=fd, follow_symlinks=False)
        if (linked.st_dev, linked.st_ino) != (now.st_dev, now.st_ino):  # swapped meanwhile
            os.unlink(target, dir_fd=fd)
            raise Replaced(path)
        _unlink_if_same(path, now)


def delete(path: Path, file: Checked) -> None:
    now = _current(path, file)
    if now is not None:
        _unlink_if_same(path, now)


def to_failed(path: Path, file: Checked | None, error: str | None, run_id: int | None,
              refused: bool = False) -> Path | None:
    """Move ``path`` to ``failed/`` with ``NAME.error.json`` beside it; where it went.

    ``file`` is what was read (None if nothing could be); ``refused``: not a regular file.
    """
    if _current(path, file, refused) is None:
        return None
    with subfolder(path.parent, "failed") as fd:
        name = path.name
        if _exists(name, fd):
            name = f"{stamp()}-{path.name}"
        os.rename(path, name, dst_dir_fd=fd)
        report = {"file": path.name, "error": error, "runId": run_id,
                  "at": utc_iso()}
        _write_new(name + ".error.json", fd, json.dumps(report, indent=2))
    return path.parent / "failed" / name


def _write_new(name: str, fd: int, text: str) -> None:
    """Create ``name`` in the folder ``fd``; whatever had that name is replaced, unread."""
    try:
        out = os.open(name, REPORT_FLAGS, 0o644, dir_fd=fd)
    except FileExistsError:
        os.unlink(name, dir_fd=fd)
        out = os.open(name, REPORT_FLAGS, 0o644, dir_fd=fd)
    with os.fdopen(out, "w", encoding="utf-8") as f:
        f.write(text)
