"""Whether each file URL answers, asked with HEAD and remembered for ``available_ttl``.

The answers live in a small SQLite file under the daemon's ``state_dir``
(``http_index/available.sqlite3``), shared by every job and run, so a second run
within the TTL sends no HEAD at all. An answer is reused only while the listing
still shows the file with the same size and date: a file replaced on the server is
asked about again. Without a ``state_dir`` the answers last as long as the read.

2xx and 3xx mean available; a 4xx (gone, forbidden) means unavailable; a network
error or a 5xx once the client's retries are spent fails the read, which the run
then retries from its checkpoint, instead of marking files unavailable on a hiccup.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.errors import AdapterError, NetworkError

if TYPE_CHECKING:
    from syncd.remote.http import HttpClient

from .http_index_walk import FileEntry

SCHEMA = """CREATE TABLE IF NOT EXISTS available (
    url TEXT PRIMARY KEY, available INTEGER NOT NULL, checked_at REAL NOT NULL,
    size INTEGER, modified_at TEXT)"""


class AvailabilityCache:
    """HEAD answers by URL, each valid for ``ttl`` seconds while the file looks the same."""

    def __init__(self, state_dir: Path | None, ttl: float) -> None:
        self.ttl = ttl
        self.heads = 0  # HEAD requests this cache sent
        self._memory: dict[str, tuple[bool, float, int | None, str | None]] = {}
        self._db: sqlite3.Connection | None = None
        if state_dir is not None and ttl > 0:
            folder = state_dir / "http_index"
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(folder / "available.sqlite3", timeout=30,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def cached(self, entry: FileEntry) -> bool | None:
        """The remembered answer for a file, while fresh and the file unchanged."""
        row = self._memory.get(entry.url)
        if row is None and self._db is not None:
            found = self._db.execute(
                "SELECT available, checked_at, size, modified_at FROM available WHERE url = ?",
                (entry.url,)).fetchone()
            row = (bool(found[0]), found[1], found[2], found[3]) if found else None
        if row is None:
            return None
        available, checked_at, size, modified_at = row
        if time.time() - checked_at >= self.ttl or (size, modified_at) != (
                entry.size, entry.modified_at):
            return None
        return available

    def remember(self, answers: Sequence[tuple[FileEntry, bool]]) -> None:
        now = time.time()
        rows = [(e.url, int(ok), now, e.size, e.modified_at) for e, ok in answers]
        for url, ok, at, size, modified_at in rows:
            self._memory[url] = (bool(ok), at, size, modified_at)
        if self._db is not None and rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO available VALUES (?, ?, ?, ?, ?)",
                                 rows)
            self._db.execute("COMMIT")

    async def check(self, client: HttpClient, entries: Sequence[FileEntry]
                    ) -> dict[str, bool]:
        """Each file's availability by URL: cached answers, then HEADs sent concurrently
        (within the client's concurrency and rate limit) for the rest."""
        answers: dict[str, bool] = {}
        unknown = []
        for entry in entries:
            known = self.cached(entry)
            if known is None:
                unknown.append(entry)
            else:
                answers[entry.url] = known
        if not unknown:
            return answers
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [(e, group.create_task(self._head(client, e.url))) for e in unknown]
        except ExceptionGroup as errors:  # the first failure, as the engine knows it
            raise errors.exceptions[0] from None
        results = [(entry, task.result()) for entry, task in tasks]
        self.remember(results)
        answers.update((entry.url, ok) for entry, ok in results)
        return answers

    async def _head(self, client: HttpClient, url: str) -> bool:
        self.heads += 1
        try:
            await client.request("HEAD", url)
        except NetworkError:
            raise
        except AdapterError:  # 4xx: gone, forbidden
            return False
        return True
