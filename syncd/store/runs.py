"""The store: runs, their errors and ingested files, behind a small synchronous API.

Called from worker threads; peewee gives each thread its own connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.adapters import ItemError
from syncd.adapters.context import Dialect
from syncd.errors import ClaimLost
from syncd.store import deliveries
from syncd.store.claims import Claims
from syncd.store.database import open_database, upgrade_schema
from syncd.store.models import MODELS, IngestedFile, SyncError, SyncRun, utcnow
from syncd.store.orm import pw
from syncd.store.queries import RunQueries
from syncd.store.reserve import Reserve
from syncd.terms import COUNTERS, UNFINISHED


class Store(RunQueries):
    """Persistence of runs; also the database SQL targets write to by default.

    The API's read-only questions about runs are in :class:`RunQueries`.
    """

    def __init__(self, db: pw.Database, claims: Claims | None = None) -> None:
        self.db = db
        self.claims = claims or Claims()
        db.bind(MODELS)
        sqlite_file = db.database if isinstance(db, pw.SqliteDatabase) else None
        self.reserve = Reserve(Path(sqlite_file) if sqlite_file else None)

    @classmethod
    def open(cls, url: str, state_dir: Path, claims: Claims | None = None) -> Store:
        db = open_database(url, state_dir)
        upgrade_schema(db)
        return cls(db, claims)

    @property
    def dialect(self) -> Dialect:
        """``sqlite``, ``postgres`` or ``mysql``."""
        if isinstance(self.db, pw.SqliteDatabase):
            return "sqlite"
        if isinstance(self.db, pw.PostgresqlDatabase):
            return "postgres"
        return "mysql"

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def ping(self) -> bool:
        try:
            self.db.execute_sql("SELECT 1").fetchone()
        except pw.PeeweeException:
            return False
        return True

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction; if it fails, the error that failed it, not the rollback's.

        A full disk (SQLite) or a dropped connection ends the transaction by itself,
        so the rollback then fails too ("cannot rollback - no transaction is active")
        and would hide the cause.
        """
        try:
            with self.db.atomic():
                yield
        except Exception as exc:
            cause = root_cause(exc)
            if cause is exc:
                raise
            raise cause from None

    # -- runs -------------------------------------------------------------------

    def create_run(self, *, job: str, trigger: str, source_type: str, source_identifier: str,
                   dry_run: bool = False, parent_run: int | None = None, attempt: int = 1,
                   job_spec: Mapping[str, Any] | None = None,
                   device: Mapping[str, Any] | None = None, affinity: str | None = None) -> int:
        run = SyncRun.create(
            job=job, trigger=trigger, status="pending", source_type=source_type,
            source_identifier=source_identifier, dry_run=dry_run, parent_run=parent_run,
            attempt=attempt, host=self.claims.host, affinity=affinity,
            job_spec=json.dumps(job_spec) if job_spec else None,
            device=json.dumps(device) if device else None,
            **{f.name: v for f, v in self.claims.fresh().items()})
        return run.id

    def record_skipped(self, *, job: str, trigger: str, source_type: str,
                       source_identifier: str, reason: str,
                       device: Mapping[str, Any] | None = None) -> int:
        """A run that had nothing to do (e.g. a file already ingested), for the record."""
        now = utcnow()
        run = SyncRun.create(
            job=job, trigger=trigger, status="completed", source_type=source_type,
            source_identifier=source_identifier, host=self.claims.host, items_skipped=1,
            error_message=reason, started_at=now, completed_at=now, updated_at=now,
            device=json.dumps(device) if device else None)
        return run.id

    def record_failed(self, *, job: str, trigger: str, source_type: str,
                      source_identifier: str, message: str, errors: Sequence[ItemError],
                      device: Mapping[str, Any] | None = None) -> int:
        """A run that failed before it could read anything, with its errors."""
        run_id = self.create_run(job=job, trigger=trigger, source_type=source_type,
                                 source_identifier=source_identifier, device=device)
        self.start(run_id, None)
        self.add_errors(run_id, errors)
        self.finish(run_id, "failed", message)
        return run_id

    # -- ingested files -----------------------------------------------------------

    def ingested_by(self, job: str, sha256: str) -> IngestedFile | None:
        """The earlier ingestion of a file with this content by ``job``, if any."""
        return (IngestedFile.select()
                .where(IngestedFile.job == job, IngestedFile.sha256 == sha256)
                .order_by(IngestedFile.id.desc()).first())

    def record_ingested(self, *, job: str, path: str, size: int, mtime: float, sha256: str,
                        run_id: int) -> None:
        IngestedFile.create(job=job, path=path, size=size, mtime=mtime, sha256=sha256,
                            sync_run_id=run_id)

    def completed_unrecorded(self, job: str, source_identifier: str,
                             sha256: str) -> int | None:
        """A completed run of ``job`` that read this very content at this path but was
        never recorded in ``ingested_files`` (it finished in a resume after a crash)."""
        recorded = IngestedFile.select(IngestedFile.sync_run_id).where(
            IngestedFile.job == job, IngestedFile.sync_run_id.is_null(False))
        runs = (SyncRun.select()
                .where(SyncRun.job == job, SyncRun.source_identifier == source_identifier,
                       SyncRun.status == "completed", SyncRun.dry_run == False,  # noqa: E712
                       SyncRun.source_fingerprint.is_null(False),
                       SyncRun.id.not_in(recorded))
                .order_by(SyncRun.id.desc()))
        for run in runs:
            if (fingerprint_of(run) or {}).get("sha256") == sha256:
                return run.id
        return None

    def move_source(self, run_id: int, source_identifier: str) -> None:
        """Where a run's file is now (moved to ``failed/``): a retry reads it there."""
        SyncRun.update({SyncRun.source_identifier: source_identifier}).where(
            SyncRun.id == run_id).execute()

    def get_run(self, run_id: int) -> SyncRun | None:
        return SyncRun.get_or_none(SyncRun.id == run_id)

    def run(self, run_id: int) -> SyncRun:
        """A run known to exist (being executed, just finished): ``DoesNotExist`` if not."""
        return SyncRun.get_by_id(run_id)

    def find_unfinished(self, job: str, source_identifier: str) -> SyncRun | None:
        """The newest pending or interrupted run of a job on a source, if any."""
        return (SyncRun.select()
                .where(SyncRun.job == job, SyncRun.source_identifier == source_identifier,
                       SyncRun.status.in_(UNFINISHED), SyncRun.dry_run == False)  # noqa: E712
                .order_by(SyncRun.id.desc()).first())

    def unfinished_runs(self) -> list[SyncRun]:
        return list(SyncRun.select().where(SyncRun.status.in_(UNFINISHED))
                    .order_by(SyncRun.id))

    def start(self, run_id: int, fingerprint: Mapping[str, Any] | None,
              restart: bool = False) -> None:
        """Mark a run in progress; ``restart`` clears a checkpoint the source outgrew."""
        values: dict[pw.Field[Any], Any] = {
            SyncRun.status: "in_progress", SyncRun.updated_at: utcnow(),
            SyncRun.source_fingerprint: json.dumps(fingerprint) if fingerprint else None,
            SyncRun.started_at: pw.fn.COALESCE(SyncRun.started_at, utcnow()),
        }
        if restart:
            values[SyncRun.checkpoint] = None
            for name in COUNTERS:
                values[getattr(SyncRun, f"items_{name}")] = 0
        self._update_claimed(run_id, values)

    def _update_claimed(self, run_id: int, values: Mapping[Any, Any]) -> None:
        """Update a run this process executes; ClaimLost when another daemon took it over.

        The claim is the fence: a daemon that lost its lease (paused, cut off) can no
        longer move the checkpoint or the counters, and its batch rolls back.
        """
        held = (SyncRun.claimed_by == self.claims.holder) | SyncRun.claimed_by.is_null()
        if SyncRun.update(values).where(SyncRun.id == run_id, held).execute() == 0 and not (
                SyncRun.select().where(SyncRun.id == run_id, held).exists()):
            # (MySQL reports 0 for a matched row whose values did not change: look again)
            raise ClaimLost(f"run {run_id} was taken over by another daemon")

    def advance(self, run_id: int, counts: Mapping[str, int], checkpoint: Any) -> None:
        """Add a batch's counts and move the checkpoint (inside the batch's transaction)."""
        values: dict[Any, Any] = {SyncRun.checkpoint: json.dumps(checkpoint),
                                  SyncRun.updated_at: utcnow()}
        for name, count in counts.items():
            if count:
                column = getattr(SyncRun, f"items_{name}")
                values[column] = column + count
        self._update_claimed(run_id, values)

    def finish(self, run_id: int, status: str, error_message: str | None = None,
               target_mark: str | None = None) -> None:
        """Set the run's final (or paused) status and end this process's lease on it;
        a completed run may leave its ``target_mark`` (``syncd.engine.unchanged``)."""
        held = (SyncRun.claimed_by == self.claims.holder) | SyncRun.claimed_by.is_null()
        SyncRun.update({SyncRun.status: status, SyncRun.error_message: error_message,
                        SyncRun.completed_at: utcnow() if status != "pending" else None,
                        SyncRun.updated_at: utcnow(), SyncRun.lease_until: None,
                        SyncRun.target_mark: target_mark}
                       ).where(SyncRun.id == run_id, held).execute()

    def retry_run(self, run_id: int) -> int:
        """A new attempt of a failed run, starting from its checkpoint."""
        old = SyncRun.get_by_id(run_id)
        new = SyncRun.create(
            job=old.job, trigger="retry", status="pending", source_type=old.source_type,
            source_identifier=old.source_identifier, source_fingerprint=old.source_fingerprint,
            checkpoint=old.checkpoint, attempt=old.attempt + 1, parent_run=old.id,
            host=self.claims.host, job_spec=old.job_spec, affinity=old.affinity,
            **{f.name: v for f, v in self.claims.fresh().items()})
        return new.id

    def add_errors(self, run_id: int, errors: Iterable[ItemError]) -> None:
        rows = [{"sync_run_id": run_id, "error_type": e.type, "error_code": e.code,
                 "error_message": e.message[:2000], "item_identifier": e.item,
                 "is_retryable": e.retryable, "created_at": utcnow()} for e in errors]
        for start in range(0, len(rows), 500):
            SyncError.insert_many(rows[start:start + 500]).execute()

    def copy_errors(self, from_run: int, to_run: int) -> None:
        """Record ``from_run``'s errors for ``to_run`` too (the same content, read again)."""
        copied = (SyncError.error_type, SyncError.error_code, SyncError.error_message,
                  SyncError.item_identifier, SyncError.is_retryable)
        SyncError.insert_from(
            SyncError.select(pw.Value(to_run), *copied, pw.Value(utcnow()))
            .where(SyncError.sync_run_id == from_run).order_by(SyncError.id),
            [SyncError.sync_run_id, *copied, SyncError.created_at]).execute()

    def errors_of(self, run_id: int, limit: int | None = None) -> list[SyncError]:
        query = SyncError.select().where(SyncError.sync_run_id == run_id).order_by(SyncError.id)
        return list(query.limit(limit) if limit else query)

    def counters(self, run: SyncRun) -> dict[str, int]:
        return {name: getattr(run, f"items_{name}") for name in COUNTERS}

    def retryable_failures(self) -> list[int]:
        """Failed runs with a retryable error that nothing has superseded since.

        Superseded: a later attempt took it over, or a newer run of the same job on the
        same source completed (retrying the old one would write older data over newer).
        """
        retried = SyncRun.select(SyncRun.parent_run).where(SyncRun.parent_run.is_null(False))
        retryable = (SyncError.select(SyncError.sync_run_id)
                     .where(SyncError.is_retryable == True))  # noqa: E712
        newer = SyncRun.alias("newer")
        completed_since = (newer.select(newer.id)
                           .where(newer.job == SyncRun.job,
                                  newer.source_identifier == SyncRun.source_identifier,
                                  newer.status == "completed", newer.id > SyncRun.id,
                                  newer.dry_run == False))  # noqa: E712
        query = (SyncRun.select(SyncRun.id)
                 .where(SyncRun.status == "failed", SyncRun.id.in_(retryable),
                        SyncRun.id.not_in(retried), ~pw.fn.EXISTS(completed_since))
                 .order_by(SyncRun.id))
        return [r.id for r in query]

    def purge_older_than(self, days: int) -> int:
        """Remove finished runs (and their errors) older than ``days``."""
        ids = self.old_runs(utcnow() - timedelta(days=days))
        self.delete_runs(ids)
        return len(ids)

    # -- cleanup (syncd.store.cleanup) ------------------------------------------------

    def old_runs(self, cutoff: datetime) -> list[int]:
        """Finished runs created before ``cutoff`` (a run still going is never old)."""
        old = SyncRun.select(SyncRun.id).where(SyncRun.created_at < cutoff,
                                               SyncRun.status.not_in(UNFINISHED))
        return [r.id for r in old.order_by(SyncRun.id)]

    def count_errors(self, run_ids: list[int]) -> int:
        return sum(SyncError.select().where(SyncError.sync_run_id.in_(chunk)).count()
                   for chunk in _chunks(run_ids))

    def delete_runs(self, run_ids: list[int]) -> None:
        """Delete these runs and their errors, a chunk per transaction."""
        for chunk in _chunks(run_ids):
            with self.db.atomic():
                SyncError.delete().where(SyncError.sync_run_id.in_(chunk)).execute()
                deliveries.forget_runs(chunk)
                SyncRun.delete().where(SyncRun.id.in_(chunk)).execute()

    def old_ingested_files(self, cutoff: datetime) -> list[IngestedFile]:
        """Records of files ingested before ``cutoff``."""
        return list(IngestedFile.select().where(IngestedFile.ingested_at < cutoff)
                    .order_by(IngestedFile.id))

    def delete_ingested_files(self, ids: list[int]) -> None:
        for chunk in _chunks(ids):
            IngestedFile.delete().where(IngestedFile.id.in_(chunk)).execute()


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    """``IN (…)`` lists short enough for every backend's parameter limit."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]

ROLLBACK_NOISE = ("cannot rollback", "no such savepoint", "connection already closed",
                  "no transaction is active")


def root_cause(exc: BaseException) -> BaseException:
    """The first error of a chain of failed rollbacks."""
    while (exc.__context__ is not None
           and any(text in str(exc).lower() for text in ROLLBACK_NOISE)):
        exc = exc.__context__
    return exc


def checkpoint_of(run: SyncRun) -> dict[str, Any] | None:
    return json.loads(run.checkpoint) if run.checkpoint else None


def fingerprint_of(run: SyncRun) -> dict[str, Any] | None:
    return json.loads(run.source_fingerprint) if run.source_fingerprint else None
