"""Reading runs for the control API and the metrics: lists, counts, one run's errors.

A mixin of :class:`~syncd.store.Store`, so that no module outside the store queries
its tables; everything here only reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from syncd.store.models import SyncError, SyncRun
from syncd.store.orm import pw
from syncd.terms import RUN_STATUSES


def _tuples(query: pw.ModelSelect[Any]) -> Iterator[tuple[Any, ...]]:
    """The query's rows as tuples: peewee's stubs type ``.tuples()`` rows as models."""
    yield from query.tuples()


class RunQueries:
    """The store's read-only questions about runs."""

    def last_completed(self, job: str) -> SyncRun | None:
        """The newest completed run of ``job`` on any source (not a dry run) that ran:
        not one recorded without running (``record_skipped``: a file already ingested),
        which read and wrote nothing, and so left the table, and what the run before it
        left for the next (its mark, its lines' snapshot), as they were."""
        recorded_only = ((SyncRun.items_processed == 0) & (SyncRun.items_skipped > 0)
                         & SyncRun.checkpoint.is_null() & SyncRun.target_mark.is_null())
        return (SyncRun.select()
                .where(SyncRun.job == job, SyncRun.status == "completed",
                       SyncRun.dry_run == False, ~recorded_only)  # noqa: E712
                .order_by(SyncRun.id.desc()).first())

    def input_errors_only(self, run_id: int) -> bool:
        """Are all of the run's errors its input's own (a bad line, a repeated key), which
        the same content and job give again, and none the target's or passing ones?"""
        other = (SyncError.error_type.not_in(("validation", "parsing"))
                 | (SyncError.is_retryable == True))  # noqa: E712
        return not SyncError.select().where(SyncError.sync_run_id == run_id, other).exists()

    def last_checkpoint(self, job: str, source_identifier: str) -> dict[str, Any] | None:
        """The final checkpoint of the newest completed run of ``job`` on a source (not a
        dry run): what an incremental source reads on from (``RunContext``)."""
        run = (SyncRun.select(SyncRun.checkpoint)
               .where(SyncRun.job == job, SyncRun.source_identifier == source_identifier,
                      SyncRun.status == "completed", SyncRun.dry_run == False,  # noqa: E712
                      SyncRun.checkpoint.is_null(False))
               .order_by(SyncRun.id.desc()).first())
        if run is None or not run.checkpoint:
            return None
        value = json.loads(run.checkpoint)
        return value if isinstance(value, dict) else None

    def insertion_taken(self, key: str) -> bool:
        """Did a run already come from this drive insertion (``device.insertion``)?"""
        needle = f'"insertion": "{key}"'
        return bool(SyncRun.select(SyncRun.id).where(SyncRun.device.contains(needle))
                    .exists())

    def run_stats(self, by_job: bool = False) -> dict[str, Any]:
        """How many runs there are, in total and by status (and by job when asked)."""
        rows = _tuples(SyncRun.select(SyncRun.job, SyncRun.status, pw.fn.COUNT(SyncRun.id))
                       .group_by(SyncRun.job, SyncRun.status))
        total: dict[str, Any] = dict.fromkeys(("total", *RUN_STATUSES), 0)
        jobs: dict[str, dict[str, int]] = {}
        for job, status, n in rows:
            for bucket in (total, jobs.setdefault(job, dict.fromkeys(("total", *RUN_STATUSES),
                                                                     0))):
                bucket[status] = bucket.get(status, 0) + n
                bucket["total"] += n
        if by_job:
            total["byJob"] = jobs
        return total

    def runs_page(self, *, limit: int, status: str | None = None, job: str | None = None,
                  before: int | None = None) -> tuple[list[SyncRun], int | None]:
        """Newest runs first, at most ``limit``, and the id to page on from (or None)."""
        query = SyncRun.select().order_by(SyncRun.id.desc()).limit(limit + 1)
        if status:
            query = query.where(SyncRun.status == status)
        if job:
            query = query.where(SyncRun.job == job)
        if before:
            query = query.where(SyncRun.id < before)
        found = list(query)
        more = len(found) > limit
        found = found[:limit]
        return found, (found[-1].id if more and found else None)

    def run_errors(self, run_id: int, limit: int) -> tuple[list[SyncError], int]:
        """A run's first ``limit`` errors, and how many it has in all."""
        errors = (SyncError.select().where(SyncError.sync_run_id == run_id)
                  .order_by(SyncError.id).limit(limit))
        total = SyncError.select().where(SyncError.sync_run_id == run_id).count()
        return list(errors), total

    def last_run(self, job: str) -> SyncRun | None:
        return SyncRun.select().where(SyncRun.job == job).order_by(SyncRun.id.desc()).first()

    def status_counts(self) -> dict[str, int]:
        """Runs by status, every status present (0 when none)."""
        counts = dict.fromkeys(RUN_STATUSES, 0)
        query = SyncRun.select(SyncRun.status, pw.fn.COUNT(SyncRun.id)).group_by(SyncRun.status)
        for status, count in _tuples(query):
            counts[status] = count
        return counts

    def last_success(self) -> dict[str, datetime]:
        """Each job's last completion time (UTC) of a completed run."""
        last = _tuples(SyncRun.select(SyncRun.job, pw.fn.MAX(SyncRun.completed_at))
                       .where(SyncRun.status == "completed").group_by(SyncRun.job))
        out: dict[str, datetime] = {}
        for job, completed in last:
            if completed is not None:
                if isinstance(completed, str):  # SQLite's aggregate loses the type
                    completed = datetime.fromisoformat(completed)
                out[job] = completed.replace(tzinfo=UTC)
        return out
