"""Cross-process locks: one run per job and source, even between the daemon and the CLI.

A lock is an ``flock`` on a file in ``state_dir/locks``; the kernel drops it when the
holder dies, so a run left ``in_progress`` whose lock is free was interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from syncd.errors import RunConflict
from syncd.store import Store
from syncd.terms import UNFINISHED


class RunLock:
    """Exclusive lock for ``(job, source identifier)``."""

    def __init__(self, state_dir: Path, job: str, identifier: str) -> None:
        digest = hashlib.sha1(f"{job}\0{identifier}".encode()).hexdigest()[:20]
        self.path = state_dir / "locks" / f"{job}-{digest}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if free; False when another process or run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """True while some process holds the lock (checked without keeping it)."""
        if self.acquire():
            self.release()
            return False
        return True


async def take_lock(state_dir: Path, job: str, identifier: str, store: Store,
                    task: asyncio.Task[Any] | None, holder: int | None) -> RunLock:
    """The run lock of ``job`` on ``identifier``, or ``RunConflict``.

    A run of this process (``holder``, its ``task``) whose outcome is already stored
    releases its lock a moment later, when its worker thread hands back: a trigger in
    between waits for that instead of being refused.
    """
    lock = RunLock(state_dir, job, identifier)
    if lock.acquire():
        return lock
    if holder is not None:
        run = await asyncio.to_thread(store.get_run, holder)
        if run is not None and run.status not in UNFINISHED:
            if task is not None:
                with contextlib.suppress(Exception):  # its outcome is the store's
                    await asyncio.wait_for(asyncio.shield(task), 10)
            if lock.acquire():
                return lock
    raise RunConflict(f"job {job!r} is already running on {identifier}")
