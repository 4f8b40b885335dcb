"""Group commit: consecutive batches of a store target share one transaction.

Each batch's writes, counters and checkpoint still go in together, so a crash at any
instant rolls back to a checkpoint that matches the table exactly; only *when* they
are committed changes. Committing about once a second instead of once a batch makes a
large, fast file cost a few dozen commits instead of one per 20,000 rows: with keys in
random order each commit rewrites most of the index's pages (PERF-NOTES), so fewer
commits mean fewer pages written. A slow source still commits once a second at least;
a crash loses at most that much work, which the resumed run reads again. Sources are
read in chunks of at most ``READ_ROWS``, so memory does not grow with ``batch_rows``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType

from syncd.store import Store

COMMIT_SECONDS = 1.0  # a transaction is committed once it is this old…
READ_ROWS = 20_000  # …or holds the job's batch_rows; sources are read in chunks of this


class GroupCommit:
    """An open transaction spanning batches, committed when due; used as ``with``.

    Each batch is written in a savepoint of its own, so a batch that fails leaves the
    ones before it whole: they are still committed, and ``on_commit`` is told.
    """

    def __init__(self, store: Store, on_commit: Callable[[], None], rows: int,
                 seconds: float = COMMIT_SECONDS) -> None:
        self.store, self.on_commit, self.seconds, self.max_rows = store, on_commit, seconds, rows
        self._open: ExitStack | None = None
        self._since = 0.0
        self._rows = 0

    def begin(self) -> None:
        """Open the group's transaction unless one is open already."""
        if self._open is None:
            stack = ExitStack()
            stack.enter_context(self.store.atomic())
            self._open, self._since, self._rows = stack, time.monotonic(), 0

    def added(self, rows: int) -> None:
        """Count a written batch; commit when the group is due."""
        self._rows += rows
        if self._open is not None and (self._rows >= self.max_rows
                                       or time.monotonic() - self._since >= self.seconds):
            self.commit()

    def commit(self) -> None:
        """Commit what is open (a database error rolls it back and is raised)."""
        stack, self._open = self._open, None
        if stack is not None:
            stack.close()
            self.on_commit()

    def __enter__(self) -> GroupCommit:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Commit the batches written so far, even when a later one failed."""
        self.commit()
