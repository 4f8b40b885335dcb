"""Ingesting a file that arrived (watched folder or USB drive): once per content, per job.

Shared by the triggers that bring files: only a regular file is taken, opened without
following a symbolic link (a link or a FIFO in an inbox is refused before anything is
read). A file whose sha256 the job already ingested is recorded as a skipped run and not
read again; others run one at a time per job, and a completed run records the file in
``ingested_files`` (also when the run completed in a resume after a crash).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat as st
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from syncd.engine import Engine, Request
from syncd.errors import RunConflict, SourceError
from syncd.filenames import is_text, shown
from syncd.store import fingerprint_of

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class Refused(OSError):
    """Not a regular file (a symbolic link, FIFO, socket or device): never read."""


@dataclass(frozen=True, slots=True)
class Checked:
    """The regular file that was hashed: which inode, and its size and time then."""

    dev: int
    ino: int
    size: int
    mtime: float
    mtime_ns: int
    sha256: str

    def same_file(self, now: os.stat_result) -> bool:
        """Is ``now`` (an lstat) still this file, unchanged?"""
        return (st.S_ISREG(now.st_mode)
                and (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns)
                == (self.dev, self.ino, self.size, self.mtime_ns))


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of a file: its run, that run's status, and why it failed."""

    run_id: int | None
    status: str  # completed | failed | cancelled | pending | skipped | unchanged
    error: str | None = None
    unreadable: bool = False  # the file itself could not be read at all
    file: Checked | None = None  # what was checked and hashed, for archiving it
    refused: bool = False  # not a regular file: nothing of it was read


def _kind(mode: int) -> str:
    if st.S_ISLNK(mode):
        return "a symbolic link"
    if st.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if st.S_ISSOCK(mode):
        return "a socket"
    if st.S_ISCHR(mode) or st.S_ISBLK(mode):
        return "a device"
    if st.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def check_file(path: Path) -> Checked:
    """Hash ``path`` if it is a regular file, through one descriptor opened without
    following a link or blocking on a FIFO; raise :class:`Refused` otherwise."""
    before = os.lstat(path)
    if not st.S_ISREG(before.st_mode):
        raise Refused(errno.EINVAL, f"refused: {_kind(before.st_mode)}, not a regular file; "
                      "nothing was read")
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since the lstat
            raise Refused(errno.ELOOP, "refused: a symbolic link, not a regular file; "
                          "nothing was read") from None
        raise
    try:
        stat = os.fstat(fd)
        if not st.S_ISREG(stat.st_mode):
            raise Refused(errno.EINVAL, f"refused: {_kind(stat.st_mode)}, not a regular "
                          "file; nothing was read")
        with open(fd, "rb", buffering=0, closefd=False) as f:
            sha256 = hashlib.file_digest(f, "sha256").hexdigest()
    finally:
        os.close(fd)
    return Checked(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime, stat.st_mtime_ns,
                   sha256)


class FileIngestor:
    """Runs jobs on arriving files, never two of the same job at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.log = structlog.get_logger("syncd.ingest")
        self._job_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def queued(self, job: str) -> bool:
        return self._job_locks[job].locked()

    async def ingest(self, job: str, path: Path, trigger: str,
                     device: Mapping[str, Any] | None = None) -> Ingested:
        """Run ``job`` on ``path`` unless that content was already ingested by it."""
        async with self._job_locks[job]:
            if not is_text(path.name):  # syncd.filenames says why
                return Ingested(None, "failed", f"refused: the file name '{shown(path.name)}' "
                                "is not UTF-8 text; nothing was read (rename it)",
                                unreadable=True)
            try:
                file = await asyncio.to_thread(check_file, path)
            except Refused as exc:
                return Ingested(None, "failed", exc.strerror, unreadable=True, refused=True)
            except OSError as exc:
                return Ingested(None, "failed", f"cannot read {path}: {exc.strerror}", True)
            digest = file.sha256
            earlier = await asyncio.to_thread(self.store.ingested_by, job, digest)
            if earlier is not None and (earlier.path, earlier.size, earlier.mtime) == (
                    str(path), file.size, file.mtime):
                # the very file we took before, still in place (kept, or not yet archived
                # when the daemon stopped): no news
                return Ingested(earlier.sync_run_id, "unchanged", file=file)
            if earlier is None:  # a run that completed but was never recorded (a crash)
                done = await asyncio.to_thread(self.store.completed_unrecorded, job,
                                               str(path), digest)
                if done is not None:
                    await asyncio.to_thread(
                        self.store.record_ingested, job=job, path=str(path), size=file.size,
                        mtime=file.mtime, sha256=digest, run_id=done)
                    self.log.info("file recorded as ingested by its resumed run", job=job,
                                  path=str(path), run_id=done)
                    return Ingested(done, "completed", file=file)
            if earlier is not None:
                reason = (f"already ingested by run {earlier.sync_run_id} "
                          f"(same sha256 as {earlier.path})")
                run_id = await self.engine.record_skipped(job, trigger, str(path), reason,
                                                          device=device)
                self.log.info("file skipped", job=job, path=str(path), reason=reason,
                              run_id=run_id)
                return Ingested(run_id, "skipped", reason, file=file)
            running = self.engine.running(job, str(path))
            try:
                if running is not None:  # resumed at start: its outcome is this file's
                    run_id, outcome = running, await self.engine.wait(running)
                else:
                    run_id, outcome = await self.engine.run(
                        Request(job, trigger, str(path), device=device))
            except RunConflict as exc:  # another process runs it
                return Ingested(None, "pending", str(exc))
            except SourceError as exc:
                return Ingested(None, "failed", str(exc), unreadable=True, file=file)
            if outcome.status == "completed":
                await asyncio.to_thread(
                    self.store.record_ingested, job=job, path=str(path), size=file.size,
                    mtime=file.mtime, sha256=self._read_digest(run_id, digest),
                    run_id=run_id)
            unreadable = outcome.status == "failed" and await asyncio.to_thread(
                self._unreadable, run_id)
            return Ingested(run_id, outcome.status, outcome.error, unreadable, file=file)

    def _read_digest(self, run_id: int, hashed: str) -> str:
        """The sha256 the run itself read (its fingerprint), if the source records one.

        It differs from ``hashed`` when the file was replaced between the two reads;
        the watcher then sees a changed file and takes it as a new arrival.
        """
        run = self.store.get_run(run_id)
        read = (fingerprint_of(run) or {}).get("sha256") if run is not None else None
        return read if isinstance(read, str) else hashed

    def _unreadable(self, run_id: int) -> bool:
        """Did the run fail because the file cannot be read at all (not a passing fault)?"""
        errors = self.store.errors_of(run_id)
        return any(e.error_type in ("parsing", "validation") and not e.is_retryable
                   and not e.item_identifier for e in errors)
