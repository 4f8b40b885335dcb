"""Executing one run, in a worker thread: read batches, write them, commit progress.

A batch's writes, the run's counters, its errors and the checkpoint are committed in
one transaction when the target writes to the store's database (consecutive batches
share it, committed about once a second: ``grouping``). Killed at any instant, the
run therefore resumes from a checkpoint that matches the target exactly. What follows
the last batch (``on_missing``, the run recorded completed) is in ``completing``; a run
that need not read at all, in ``unchanged``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from syncd.adapters import (
    AsyncSource,
    Batch,
    Checkpoint,
    ItemError,
    Row,
    Source,
    Target,
    TargetSchema,
    WriteResult,
)
from syncd.engine import changed_lines, pair, unchanged
from syncd.engine.completing import RECONCILE, Completing, Stopped, settle
from syncd.engine.duplicates import Check, DuplicateKeys
from syncd.engine.failures import SourceChanged, fail_run, is_transient, retry_wait
from syncd.engine.grouping import READ_ROWS, GroupCommit
from syncd.engine.line_plan import LinePlan
from syncd.engine.outbox import Outbox
from syncd.engine.plan import JobPlan
from syncd.engine.preview import DryRunPlan
from syncd.engine.readahead import InThread, ReadAhead, reader
from syncd.engine.runs import Outcome, Progress, Stop
from syncd.engine.screening import (
    Screen,
    drop_keyless,
    drop_repeated_in_batch,
    index_again,
)
from syncd.engine.targets import Writer, in_transaction, open_target, run_context
from syncd.errors import ClaimLost
from syncd.remote.http import HttpFactory
from syncd.store import Store, checkpoint_of, fingerprint_of

if TYPE_CHECKING:
    from syncd.store.models import SyncRun

class RunExecutor(Completing):
    """Drives one run to an outcome; every method runs in the worker thread."""

    def __init__(self, store: Store, plan: JobPlan, run_id: int, source: Source | AsyncSource,
                 stop: Stop, on_progress: Callable[[Progress], None] | None = None,
                 dry_run: bool = False, state_dir: Path | None = None,
                 allow_mass_missing: bool = False, http: HttpFactory | None = None,
                 dry_plan: DryRunPlan | None = None) -> None:
        self.store, self.plan, self.run_id, self.source = store, plan, run_id, source
        self.dry_plan = dry_plan  # a dry ``--all``: creates assumed by the runs after
        self.http = http
        self.state_dir, self.allow_mass_missing = state_dir, allow_mass_missing
        self.stop, self.on_progress, self.dry_run = stop, on_progress, dry_run
        self.log = structlog.get_logger("syncd.run").bind(run_id=run_id, job=plan.name)
        self.progress = Progress(run_id, plan.name)
        self.duplicates = DuplicateKeys()
        self.started_at: datetime | None = None  # the run's first start (kept on resume)
        self.digest: str | None = None  # of the content and job (``unchanged``)
        self.indexed = 0  # keys in ``duplicates`` whose batch committed
        self.written = 0  # …whose batch was written, maybe not committed yet
        self.lines: LinePlan | None = None  # the lines read, and recorded

    def execute(self) -> Outcome:
        retry = self.plan.config.retry
        retrying = Retrying(
            stop=stop_after_attempt(retry.attempts), wait=retry_wait(retry.initial_s, retry.max_s),
            retry=retry_if_exception(is_transient), sleep=self._sleep, reraise=True,
            before_sleep=self._log_retry)
        if self.stop.is_set() and self.stop.reason == "cancel":
            return self._stopped()  # cancelled while it waited for a slot
        try:
            return retrying(self._attempt)
        except Stopped:
            return self._stopped()
        except ClaimLost as exc:
            return self._lost(exc)
        except Exception as exc:
            return self._fail(exc)
        finally:
            self.duplicates.close()

    def _log_retry(self, state: RetryCallState) -> None:
        assert state.outcome is not None  # tenacity sleeps only after a failed attempt
        self.log.warning("retrying", attempt=state.attempt_number,
                         error=str(state.outcome.exception()),
                         wait_s=round(state.upcoming_sleep, 2))

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped

    def _attempt(self) -> Outcome:
        self.store.reserve.keep()  # room to record a full disk, if this run fills it
        run = self.store.run(self.run_id)
        checkpoint = checkpoint_of(run)
        fingerprint = self.source.fingerprint()
        stored = fingerprint_of(run)
        restart = bool(checkpoint) and stored is not None and fingerprint != stored
        if restart:
            self.log.info("source changed since the checkpoint; starting over")
            checkpoint = None
        elif checkpoint and not self.plan.target_cls.capabilities.resumable:
            self.log.info("the target writes its output whole; starting over")
            restart, checkpoint = True, None
        self.store.start(self.run_id, fingerprint, restart=restart)
        self.started_at = self.store.run(self.run_id).started_at
        self.duplicates.rewind(0 if restart else self.indexed)
        self.indexed = self.written = self.duplicates.count
        self.progress.processed = run.items_processed if not restart else 0
        self.progress.size = self.source.size()
        schema = self.plan.schema(self.source)
        # a key's constant parts are the same on every row: its mapped fields tell rows apart
        self.duplicates.positions = [self.plan.columns.index(k) for k in schema.key
                                     if k in self.plan.columns]
        target = open_target(self.plan, schema, self.store, report=True,
                             dry_plan=self.dry_plan, **self._context(self.dry_run))
        previous = self.store.last_checkpoint(self.plan.name, self.source.identifier)
        self.source.open(run_context(self.plan, self.store, previous_checkpoint=previous,
                                     sql=self.source.capabilities.store,
                                     **self._context(self.dry_run)))
        try:
            last = self._same_as_last(target, checkpoint, fingerprint)
            if last is not None:
                return self._complete_unchanged(last)
            self.lines = changed_lines.plan(
                self.store, self.plan.name, self.source, target, self.state_dir, self.digest,
                self.digest and unchanged.config_digest(self.plan, self.source),
                self.duplicates.positions, self.plan.config.on_missing, self.plan.fields,
                min(self.plan.config.batch_rows, READ_ROWS))
            if not (checkpoint and checkpoint.get("phase") == RECONCILE):
                rows = self.plan.config.batch_rows
                with self._reader(target, checkpoint, schema.key) as stream, \
                        GroupCommit(self.store, self._committed, rows) as group:
                    for batch in stream:
                        self._commit(target, batch, schema.key, group, stream)
                        if self.stop.is_set():
                            group.commit()
                            return self._stopped()
                self.source = stream.source  # as its read left it, here or in a child
            self._check_unchanged(fingerprint)
            outcome = self._complete(target, schema.key)
            self._keep_lines()
            return outcome
        finally:
            target.close()
            if self.lines is not None:
                self.lines.discard()  # (unless kept)
                self.lines = None

    def _keep_lines(self) -> None:
        """Leave the lines' snapshot for the next run, once this one left its mark."""
        if self.lines is not None and not self.dry_run and self.marked:
            lines, self.lines = self.lines, None
            lines.leave(self.run_id, self.log)

    def _same_as_last(self, target: Writer, checkpoint: Checkpoint | None,
                      fingerprint: dict[str, Any] | None) -> SyncRun | None:
        """The job's last completed run, if reading again would change nothing it left.

        An attempt resuming from a checkpoint always reads, and leaves no mark (no
        digest): what others wrote before it opened its target went unseen."""
        self.digest = None if checkpoint else unchanged.job_digest(
            self.plan, self.source, fingerprint, target)
        return unchanged.last_alike(self.store, self.plan.name, target, self.digest)

    def _complete_unchanged(self, last: SyncRun) -> Outcome:
        self.progress.processed += unchanged.complete(self.store, self.run_id, last,
                                                      self.dry_run)
        if not self.dry_run and self.state_dir is not None:
            changed_lines.carry(self.state_dir, self.plan.name, last.id, self.run_id)
        if self.on_progress is not None:
            self.on_progress(self.progress)
        self.log.info("run completed; nothing read: the same content as a run that left "
                      "the target as it is", same_as_run=last.id)
        return Outcome("completed")

    def _reader(self, target: Writer, checkpoint: Checkpoint | None,
                key: tuple[str, ...]) -> ReadAhead | InThread:
        """The batches to write, read here or by a reader process that screens them and
        runs the target's preparer (not for a pair's import, which screens after it)."""
        rows = min(self.plan.config.batch_rows, READ_ROWS)
        if self.lines is not None and self.lines.wanted is not None:
            assert isinstance(self.source, Source)  # (``changed_lines.plan`` made sure)
            return InThread(self.source, self.lines.read(self.source, self.plan.fields, rows))
        # an empty target's write tells a repeated key (a dry run writes nothing)
        across = not (isinstance(target, Target) and target.empty() and not self.dry_run
                      and self.duplicates.count == 0)
        screen = None if self.plan.pair is not None else Screen(
            self.duplicates.positions, self._key_names(key), across)
        prepare = target.preparer() if isinstance(target, Target) else None
        stream = reader(self.source, self.plan.fields, checkpoint, rows, prepare, screen,
                        *(self.lines.recorders() if self.lines else ()))
        if self.lines is not None and not self.lines.reading(stream):
            self.lines = None  # (no snapshot: the file's lines are not its records)
        return stream

    def _key_names(self, key: tuple[str, ...]) -> str:
        """The key's mapped fields, as errors name them."""
        return ", ".join(k for k in key if k in self.plan.columns)

    def _check_unchanged(self, fingerprint: dict | None) -> None:
        """Fail (retryably) a run whose source changed while it was read."""
        if fingerprint is not None and not self.source.unchanged_since(fingerprint):
            raise SourceChanged(
                f"{self.source.identifier} changed while it was read (written to, truncated "
                "or replaced); nothing was removed and the run did not complete")

    def _context(self, dry_run: bool) -> dict[str, Any]:
        return {"run_id": self.run_id, "log": self.log, "state_dir": self.state_dir,
                "dry_run": dry_run, "cancelled": self.stop.is_set, "http": self.http,
                "started_at": self.started_at}

    def _open_target(self, schema: TargetSchema, dry_run: bool) -> Writer:
        return open_target(self.plan, schema, self.store, **self._context(dry_run))

    def _commit(self, target: Writer, batch: Batch, key: tuple[str, ...],
                group: GroupCommit, stream: ReadAhead | InThread) -> None:
        rows, items, errors = batch.rows, batch.items, list(batch.errors)
        paired = None
        if not stream.screened:  # else the reader process did: every row has its key
            rows, items = drop_keyless(rows, items, errors, self.duplicates.positions,
                                       self._key_names(key))
            if stream.repeats == "write":
                rows, items = drop_repeated_in_batch(rows, items, errors,
                                                     self.duplicates.positions)
            if self.plan.pair is not None and self.plan.pair.role == "import" \
                    and in_transaction(target):
                paired = pair.incoming(self.plan.pair, rows, items)
                rows, items = paired.rows, paired.items
        check = self.duplicates.check(rows, items) if stream.repeats == "run" else Check(
            None, 0, None)  # the check runs beside the write
        if in_transaction(target):  # the batch, counters and checkpoint commit together
            group.begin()  # …with the batches before it, about once a second
            try:
                with self.store.atomic():
                    result = self._write_paired(target, rows, items, paired)
                    if check.found() or (stream.repeats == "write" and (
                            result.updated or result.unchanged)):
                        raise _Repeated
                    self._record(batch, result, errors)
            except _Repeated:  # rare: write the batch again, without the repeated keys
                if isinstance(target, Target):
                    target.rolled_back()
                if stream.repeats == "write":
                    check = self._index_from_now_on(stream, rows, items, key)
                if check.found():  # (else another writer had the key: write it again)
                    rows, items = check.drop(rows, items, errors)
                with self.store.atomic():
                    result = self._write_paired(target, rows, items, paired)
                    self._record(batch, result, errors)
            if self.lines is not None:
                self.lines.record(rows, items, result, getattr(stream, "key_block", None))
            if batch.unread and isinstance(target, Target):
                target.unread(batch.unread)
            self.written = self.duplicates.count
            group.added(len(rows))
        else:  # sent first; what came of it commits with the counters and checkpoint
            if check.found():
                rows, items = check.drop(rows, items, errors)
            result = target.write(rows, items)
            cut = isinstance(target, Outbox) and target.interrupted
            with self.store.atomic():
                settle(target)
                if not cut:
                    self._record(batch, result, errors)
            if cut:  # what was sent is settled; the batch is read again on resume
                raise Stopped
            self.written = self.duplicates.count
            self._committed()
        self.progress.position = batch.progress
        if self.on_progress:
            self.on_progress(self.progress)

    def _index_from_now_on(self, stream: ReadAhead | InThread, rows: list[Row], items: list[str],
                           key: tuple[str, ...]) -> Check:
        """A first load's write found a key it had: index the keys read before, then
        check this batch and each one after it here."""
        self.log.info("a key repeats across batches; indexing the keys read so far")
        positions = self.duplicates.positions
        index_again(self.duplicates, stream.read_again(), positions, self._key_names(key))
        stream.repeats = "run"
        return self.duplicates.check(rows, items)

    def _write_paired(self, target: Writer, rows: list[Row], items: list[str],
                      paired: pair.Incoming | None) -> WriteResult:
        """A store target's write; for a pair's import, its id map agreement too."""
        assert isinstance(target, Target)
        if paired is None:
            return target.write(rows, items)
        if not self.dry_run:
            target.forget(paired.stale)
        result = target.write(rows, items)
        result.unchanged += paired.echoes
        if not self.dry_run and self.plan.pair is not None:
            refused = {e.item for e in result.errors}
            written = set(items)
            pair.agree(self.plan.pair.partner, [
                t for t, item in zip(paired.taken, paired.items, strict=True)
                if item in written and item not in refused])
        return result

    def _committed(self) -> None:
        """After a commit, the keys of the batches written so far are committed too."""
        self.indexed = self.written

    def _record(self, batch: Batch, result: WriteResult, errors: list[ItemError]) -> None:
        errors += result.errors
        counts = {"processed": len(batch.rows) + len(batch.errors) + batch.unread,
                  "inserted": result.inserted, "updated": result.updated,
                  "unchanged": result.unchanged + batch.unread,
                  "skipped": result.skipped + batch.skipped, "failed": len(errors)}
        self.store.add_errors(self.run_id, errors + result.notices)
        self.store.advance(self.run_id, counts, batch.checkpoint)
        self.progress.processed += counts["processed"]
        self.progress.batch_errors = errors

    def _lost(self, exc: ClaimLost) -> Outcome:
        """Another daemon runs it now: write nothing more (the claim fences us out)."""
        self.log.error("run taken over by another daemon", error=str(exc))
        return Outcome("pending", str(exc))

    def _stopped(self) -> Outcome:
        if self.stop.reason == "claim_lost":
            return self._lost(ClaimLost(f"run {self.run_id} was taken over by another daemon"))
        if self.stop.reason == "cancel":
            self.store.finish(self.run_id, "cancelled", "cancelled on request")
            self.log.info("run cancelled")
            return Outcome("cancelled", "cancelled on request")
        self.store.finish(self.run_id, "pending", None)
        self.log.info("run paused for shutdown; it resumes on the next start")
        return Outcome("pending")

    def _fail(self, exc: Exception) -> Outcome:
        return fail_run(self.store, self.run_id, self.log, exc)


class _Repeated(Exception):
    """Rolls back a batch written with a key seen before in the run."""
