"""Ingesting a file that arrived (watched folder or USB drive): once per content, per job.

Shared by the triggers that bring files: a file whose sha256 the job already ingested
is recorded as a skipped run and not read again; others run one at a time per job, and
a completed run records the file in ``ingested_files``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from syncd.engine import Engine, Request
from syncd.errors import RunConflict, SourceError

HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of a file: its run, that run's status, and why it failed."""

    run_id: int | None
    status: str  # completed | failed | cancelled | pending | skipped | unchanged
    error: str | None = None
    unreadable: bool = False  # the file itself could not be read at all


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
            try:
                stat = await asyncio.to_thread(path.stat)
                digest = await asyncio.to_thread(sha256_of, path)
            except OSError as exc:
                return Ingested(None, "failed", f"cannot read {path}: {exc.strerror}", True)
            earlier = await asyncio.to_thread(self.store.ingested_by, job, digest)
            if earlier is not None and (earlier.path, earlier.size, earlier.mtime) == (
                    str(path), stat.st_size, stat.st_mtime):
                # the very file we took before, kept in place (after = "keep"): no news
                return Ingested(earlier.sync_run_id, "unchanged")
            if earlier is not None:
                reason = (f"already ingested by run {earlier.sync_run_id} "
                          f"(same sha256 as {earlier.path})")
                run_id = await asyncio.to_thread(
                    self.store.record_skipped, job=job, trigger=trigger,
                    source_type=self.engine.plans[job].source_cls.name,
                    source_identifier=str(path), reason=reason, device=device)
                self.log.info("file skipped", job=job, path=str(path), reason=reason,
                              run_id=run_id)
                return Ingested(run_id, "skipped", reason)
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
                return Ingested(None, "failed", str(exc), unreadable=True)
            if outcome.status == "completed":
                await asyncio.to_thread(
                    self.store.record_ingested, job=job, path=str(path), size=stat.st_size,
                    mtime=stat.st_mtime, sha256=digest, run_id=run_id)
            unreadable = outcome.status == "failed" and await asyncio.to_thread(
                self._unreadable, run_id)
            return Ingested(run_id, outcome.status, outcome.error, unreadable)

    def _unreadable(self, run_id: int) -> bool:
        """Did the run fail because the file cannot be read at all (not a passing fault)?"""
        errors = self.store.errors_of(run_id)
        return any(e.error_type in ("parsing", "validation") and not e.is_retryable
                   and not e.item_identifier for e in errors)
