"""Cleanup: old run history, old ingested-file records, and long-unavailable content.

Run by the daemon at ``[daemon].cleanup`` (cron) and by ``syncd cleanup [--dry-run]``.

- Runs finished more than ``keep_runs_days`` ago go, with their errors and their
  artifacts (``state_dir/artifacts/RUN``: a browser's screenshots, pages and traces of
  failed steps), and so do the
  records of files ingested that long ago (``ingested_files``), except the record of
  a file still sitting where it was ingested from, unchanged (``after = "keep"``):
  without it the next rescan would take that file as new and ingest it again. A file
  whose record went is new to syncd if it shows up again.
- Records that have been unavailable (``is_available`` false, e.g. by
  ``on_missing = "mark_unavailable"``) for more than ``keep_content_days``, judged by
  their ``last_synced_at`` (the time they were marked), are deleted from
  ``content_index`` and from the tables of the configured jobs whose target writes
  to the store's database (a ``store`` target with a ``table`` option, such as
  ``sql``). The core names no plugin: it reads the table from the job's target options.
- The line snapshots (``state_dir/lines``) of jobs no longer in the config go, whatever
  their age: nothing else reads or removes them. A job of that name added again reads
  its first file whole, as any new job.

0 days keeps that kind of data for good.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.store.models import ContentIndex, IngestedFile, utcnow
from syncd.store.orm import pw

if TYPE_CHECKING:
    from syncd.config.schema import DaemonConfig
    from syncd.engine.plan import JobPlan
    from syncd.store.runs import Store

CONTENT_COLUMNS = ("is_available", "last_synced_at")


@dataclass
class Cleaned:
    """What a cleanup removed (or, in a dry run, would remove)."""

    dry_run: bool
    runs: int = 0
    errors: int = 0
    ingested_files: int = 0
    ingested_kept: int = 0  # old records of files still in place, kept
    artifacts: int = 0  # runs whose artifact folder went with them
    snapshots: list[str] = field(default_factory=list)  # jobs gone whose snapshot went
    content: dict[str, int] = field(default_factory=dict)  # table -> records
    runs_before: datetime | None = None
    content_before: datetime | None = None

    def lines(self) -> list[str]:
        """What to tell a person, one line per kind of data."""
        verb = "would remove" if self.dry_run else "removed"
        out = []
        if self.runs_before is None:
            out.append("runs and ingested-file records: kept for good (keep_runs_days = 0)")
        else:
            since = f"before {self.runs_before:%Y-%m-%d %H:%M} UTC"
            out.append(f"{verb} {self.runs} runs finished {since}, with their "
                       f"{self.errors} errors"
                       + (f" and the artifacts of {self.artifacts}" if self.artifacts else ""))
            kept = (f" ({self.ingested_kept} kept: the file is still in place)"
                    if self.ingested_kept else "")
            out.append(f"{verb} {self.ingested_files} ingested-file records {since}{kept}")
        if self.content_before is None:
            out.append("unavailable records: kept for good (keep_content_days = 0)")
        else:
            since = f"unavailable since before {self.content_before:%Y-%m-%d %H:%M} UTC"
            for table, count in self.content.items():
                out.append(f"{verb} {count} records {since} from {table}")
        if self.snapshots:
            out.append(f"{verb} the line snapshots of jobs no longer "
                       f"configured: {', '.join(self.snapshots)}")
        return out


def content_tables(plans: Mapping[str, JobPlan]) -> list[str]:
    """``content_index`` and the store-database tables the configured jobs write to."""
    tables = {ContentIndex._meta.table_name}
    for plan in plans.values():
        table = getattr(plan.target_options, "table", None)
        if plan.target_cls.capabilities.store and isinstance(table, str) and table:
            tables.add(table)
    return sorted(tables)


def clean(store: Store, daemon: DaemonConfig, tables: Iterable[str], dry_run: bool = False,
          now: datetime | None = None, state_dir: Path | None = None,
          jobs: Collection[str] | None = None) -> Cleaned:
    """Remove (or count, for ``dry_run``) what is older than the config keeps; with
    ``state_dir``, the old runs' artifact folders too, and with ``jobs`` (the configured
    ones) the line snapshots of the others."""
    now = now or utcnow()
    cleaned = Cleaned(dry_run)
    if daemon.keep_runs_days > 0:
        cleaned.runs_before = cutoff = now - timedelta(days=daemon.keep_runs_days)
        runs = store.old_runs(cutoff)
        cleaned.runs, cleaned.errors = len(runs), store.count_errors(runs)
        files = store.old_ingested_files(cutoff)
        gone = [f.id for f in files if not _still_in_place(f)]
        cleaned.ingested_files, cleaned.ingested_kept = len(gone), len(files) - len(gone)
        folders = [state_dir / "artifacts" / str(r) for r in runs] if state_dir else []
        folders = [f for f in folders if f.is_dir()]
        cleaned.artifacts = len(folders)
        if not dry_run:
            store.delete_runs(runs)
            store.delete_ingested_files(gone)
            for folder in folders:  # after the rows: a folder left over is harmless
                shutil.rmtree(folder, ignore_errors=True)
    if daemon.keep_content_days > 0:
        cleaned.content_before = cutoff = now - timedelta(days=daemon.keep_content_days)
        for table in tables:
            if _has_content_columns(store.db, table):
                cleaned.content[table] = _stale(store.db, table, cutoff, dry_run)
    if state_dir is not None and jobs is not None:
        from syncd.engine.line_snapshot import left_by_others

        snapshots = left_by_others(state_dir, jobs)
        cleaned.snapshots = sorted(snapshots)
        for path in [p for paths in snapshots.values() for p in paths] if not dry_run else []:
            with contextlib.suppress(OSError):  # a cache: one left over is harmless
                path.unlink(missing_ok=True)
    return cleaned


def _still_in_place(record: IngestedFile) -> bool:
    """Is the ingested file still at its path, unchanged (a watched file kept in place)?"""
    try:
        stat = os.stat(record.path, follow_symlinks=False)
    except OSError:
        return False
    return (stat.st_size, stat.st_mtime) == (record.size, record.mtime)


def _has_content_columns(db: pw.Database, table: str) -> bool:
    if not db.table_exists(table):
        return False
    columns = {c.name for c in db.get_columns(table)}
    return all(name in columns for name in CONTENT_COLUMNS)


def _stale(db: pw.Database, table: str, cutoff: datetime, dry_run: bool) -> int:
    """Delete (or count) the rows of ``table`` unavailable since before ``cutoff``."""
    t = pw.Table(table).bind(db)
    before: Any = cutoff.isoformat(" ") if isinstance(db, pw.SqliteDatabase) else cutoff
    where = (t.c.is_available == False) & (t.c.last_synced_at < before)  # noqa: E712
    if dry_run:
        return int(t.select(pw.fn.COUNT(pw.SQL("*"))).where(where).scalar() or 0)
    with db.atomic():
        return int(t.delete().where(where).execute())
