"""Driving a ``RecordTarget`` through the id map: the outbox of SPEC §8.

For each batch: hash every record, read the id map for the batch's keys, and decide
per record — unchanged (send nothing), create, update, or, for a create that an
interrupted attempt may have sent, ask the remote first (``find``) and adopt what it
holds. Creates are committed as ``pending`` intents with a stable idempotency key
before anything is sent; the results are settled by the executor in the same
transaction as the run's counters and checkpoint. Killed at any instant, a resumed
run therefore never creates a remote record twice.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.adapters import (
    AsyncRecordTarget,
    Change,
    ChangeKind,
    ItemError,
    RecordTarget,
    Result,
    Row,
    RunContext,
    TargetSchema,
    WriteResult,
)
from syncd.engine import crashpoint, gather, references
from syncd.engine.pair import PairLink
from syncd.engine.preview import DryRunPlan, Report
from syncd.errors import AdapterError
from syncd.store import conflicts, idmap
from syncd.store.hashing import record_hash
from syncd.store.idmap import Settled

COUNTED = {"created": "inserted", "adopted": "inserted", "updated": "updated",
           "deleted": "missing", "unavailable": "missing", "deferred": "skipped",
           "failed": "failed", "kept": "unchanged", "conflict": "skipped"}
STATE = {"created": "synced", "adopted": "synced", "updated": "synced", "deleted": "deleted",
         "unavailable": "synced", "deferred": "deferred", "failed": "failed",
         "kept": "synced", "conflict": "synced"}
#: outcomes after which the id map keeps the record as sent (``sent["fields"]``): a later
#: delete, which carries no record, renders its path from them
SENT = ("created", "adopted", "updated")
NOT_SENT = "cancelled"  # the code of a record a stop kept from being sent
UNAVAILABLE = "unavailable"  # the content hash recorded for a record marked unavailable


def key_text(values: Sequence[Any]) -> str:
    """``id_map.local_key``: the value as text, or a JSON array of texts (composite)."""
    texts = ["" if v is None else str(v) for v in values]
    return texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)


def request_key(job: str, key: str, digest: str) -> str:
    """Sent as ``Idempotency-Key``: the same for every attempt at the same content."""
    return hashlib.sha256(f"{job}\0{key}\0{digest}".encode()).hexdigest()


@dataclass(slots=True)
class Outbox:
    """The engine's side of a record target for one run (used in the worker thread)."""

    target: RecordTarget | AsyncRecordTarget
    schema: TargetSchema
    ctx: RunContext
    #: target field → upstream job whose local keys it holds (``[jobs.X.references]``)
    references: Mapping[str, str] = field(default_factory=dict)
    pair: PairLink | None = None  # the export side of a bidirectional pair
    #: a dry run: the report it writes, and the creates a dry ``--all`` assumes
    report: Report | None = None
    dry_plan: DryRunPlan | None = None
    _settled: list[Settled] = field(default_factory=list)
    _pairs: dict[str, str] = field(default_factory=dict)  # key → shared-field hash
    _review: list[tuple[Change, Result]] = field(default_factory=list)
    _loop: asyncio.Runner | None = None
    interrupted: bool = False  # a stop cut a batch short: it is read again on resume

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.schema.columns, *self.schema.constants)

    @property
    def gathers(self) -> bool:  # does the target send its changes at the end of the run?
        return self.target.gather

    def open(self) -> None:
        if isinstance(self.target, AsyncRecordTarget):
            self._loop = asyncio.Runner()
            self._loop.run(self.target.open(self.schema, self.ctx))
        else:
            self.target.open(self.schema, self.ctx)

    def save_report(self) -> None:
        """A dry run's report, written before the run is marked completed: a client that
        sees "completed" finds it."""
        if self.report is not None:
            self.report.save(self.ctx.state_dir)

    def close(self) -> None:
        self.save_report()  # a failed or cancelled dry run keeps what it found too
        try:
            if isinstance(self.target, AsyncRecordTarget) and self._loop is not None:
                self._loop.run(self.target.close())
            elif isinstance(self.target, RecordTarget):
                self.target.close()
        finally:
            if self._loop is not None:
                self._loop.close()

    # -- a batch ------------------------------------------------------------------

    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        """Classify, commit the intents, send; ``settle()`` records the outcome."""
        job, constants = self.schema.job, tuple(self.schema.constants.values())
        positions = [self.names.index(k) for k in self.schema.key]
        records = [(*row, *constants) for row in rows]
        keys = [key_text([r[p] for p in positions]) for r in records]
        known = idmap.entries(job, keys)
        result = WriteResult()
        todo: list[tuple[dict[str, Any], str, str, str, idmap.Entry | None]] = []
        self._pairs: dict[str, str] = {}
        for record, key, item in zip(records, keys, items, strict=True):
            digest = record_hash(record)
            entry = known.get(key)
            if entry is not None and entry.state == "synced" and (
                    entry.content_hash == digest or self._echo(entry, key, record)):
                result.unchanged += 1
                continue
            todo.append((dict(zip(self.names, record, strict=True)), key, item, digest, entry))
        assumed = self.dry_plan.created if self.dry_plan is not None else None
        translated = references.translate(self.references, [t[0] for t in todo], assumed)
        changes: list[Change] = []
        for i, ((_, key, item, digest, entry), values) in enumerate(
                zip(todo, translated.records, strict=True)):
            remote_id = entry.remote_id if entry is not None else None
            if i in translated.pending:
                self._record(Change("create", key, values, item, digest, "", remote_id),
                             Result("deferred", remote_id, references.deferral(
                                 item, translated.pending[i])), result)
                continue
            kind: ChangeKind = "update" if remote_id is not None else "create"
            if kind == "update" and not self.target.capabilities.update:
                result.errors.append(ItemError(
                    "conflict", "not_updatable", f"key {key!r} changed, and target "
                    f"{self.target.name} cannot update a record it sent", item))
                continue
            changes.append(Change(kind, key, values, item, digest,
                                  request_key(job, key, digest), remote_id,
                                  sent=entry.sent if entry else None,
                                  remote_hash=entry.remote_hash if entry else None))
        changes = self._prepare(changes)
        if self.ctx.dry_run:
            for change, outcome in zip(changes, self._preview(changes), strict=True):
                self._record(change, outcome, result)
            if self.report is not None:
                self.report.unchanged += result.unchanged
            self._settled.clear()  # a dry run records nothing, deferrals included
            self._review.clear()
            return result
        intents = [(c.key, c.content_hash, c.idempotency_key, c.sent)
                   for c in changes if c.kind == "create"]
        if intents:
            idmap.stage(job, intents)  # committed before anything is sent
        pending = {k: e.content_hash for k, e in known.items() if e.state == "pending"}
        for change, outcome in zip(changes, self._send(changes, pending), strict=True):
            self._record(change, outcome, result)
        return result

    def _echo(self, entry: idmap.Entry, key: str, record: Sequence[Any]) -> bool:
        """A pair's export: are the shared fields as last written on either side?"""
        if self.pair is None:
            return False
        digest = self._pairs[key] = self.pair.digest(record)
        return entry.pair_hash == digest

    def _preview(self, changes: list[Change]) -> list[Result]:
        """A dry run: what the target says would come of each change (sends nothing)."""
        if not changes:
            return []
        if isinstance(self.target, AsyncRecordTarget):
            assert self._loop is not None
            target = self.target
            found = self._loop.run(_gather(target.preview(c) for c in changes))
        else:
            found = [self.target.preview(c) for c in changes]
        return [r if r is not None else Result("created" if c.kind == "create" else "updated")
                for c, r in zip(changes, found, strict=True)]

    def _prepare(self, changes: list[Change]) -> list[Change]:
        """The target's look at a batch before its intents commit (reads only)."""
        if not changes:
            return changes
        if isinstance(self.target, AsyncRecordTarget):
            assert self._loop is not None
            return self._loop.run(self.target.prepare(changes))
        return self.target.prepare(changes)

    def settle(self) -> None:
        """Write the batch's results into the id map: call inside the batch's transaction."""
        crashpoint.before_settle(self._settled)
        idmap.settle(self.schema.job, self._settled)
        for change, outcome in self._review:
            conflicts.record(self.schema.job, change.key, outcome.remote_id or change.remote_id,
                             dict(change.record), dict(outcome.remote_record or {}),
                             local_hash=change.content_hash, remote_hash=outcome.remote_hash)
        self._settled.clear()
        self._review.clear()

    def finish(self) -> None:
        """The run read everything: the target sends what it gathered (``gather.py``)."""
        if not self.ctx.dry_run:
            gather.send(self.schema.job, self._finish, self._settled, self.gathers)

    def _finish(self, changes: list[Change]) -> list[Result]:
        if isinstance(self.target, AsyncRecordTarget):
            assert self._loop is not None
            return self._loop.run(self.target.finish(changes))
        return self.target.finish(changes)

    # -- on_missing ---------------------------------------------------------------

    def missing(self, seen_keys: Iterator[Row]) -> list[idmap.Entry]:
        """Records the remote holds that the full read did not see."""
        seen = {key_text(k) for k in seen_keys}
        return [e for e in idmap.synced(self.schema.job)
                if e.local_key not in seen and e.content_hash != UNAVAILABLE
                and not (e.sent or {}).get("media")]  # a record's file goes with it

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        """Delete or mark unavailable what was not seen; ``settle()`` records it."""
        caps = self.target.capabilities
        if on_missing == "keep" or not (caps.delete if on_missing == "delete"
                                        else caps.mark_unavailable):
            return 0
        gone = self.missing(seen_keys)
        kind: ChangeKind = "delete" if on_missing == "delete" else "mark_unavailable"
        changes = [Change(kind, e.local_key, {}, e.local_key, UNAVAILABLE,
                          request_key(self.schema.job, e.local_key, kind), e.remote_id,
                          sent=e.sent)
                   for e in gone]
        result = WriteResult()
        if self.ctx.dry_run:
            if self.report is not None:
                for change, outcome in zip(changes, self._preview(changes), strict=True):
                    self.report.add(change, outcome if outcome.outcome != "updated"
                                    else Result("deleted", change.remote_id))
            return len(gone)
        for change, outcome in zip(changes, self._send(changes, {}), strict=True):
            self._record(change, outcome, result)
        return len(gone) - len(result.errors)

    # -- sending ------------------------------------------------------------------

    def _send(self, changes: list[Change], pending: Pending) -> list[Result]:
        if isinstance(self.target, AsyncRecordTarget):
            assert self._loop is not None
            return self._loop.run(self._send_async(self.target, changes, pending))
        target = self.target
        results = []
        for change in changes:
            if self.ctx.cancelled():  # the rest stay as they were: the batch is redone
                results.append(_not_sent(change))
                continue
            results.append(_guarded(functools.partial(_adopt_or_apply, target, change, pending),
                                    change))
        return results

    async def _send_async(self, target: AsyncRecordTarget, changes: list[Change],
                          pending: Pending) -> list[Result]:
        limit = asyncio.Semaphore(max(1, target.capabilities.concurrency))

        async def one(change: Change) -> Result:
            async with limit:
                if self.ctx.cancelled():
                    return _not_sent(change)
                try:
                    found = await target.find(change) if _ask(target, change, pending) else None
                    if found is None:
                        return await target.apply(change)
                    adopted = Result("adopted", found)
                    if pending[change.key] == change.content_hash:
                        return adopted
                    return _adopted(await target.apply(_as_update(change, found)), adopted)
                except AdapterError as exc:
                    return Result.failed(_item_error(exc, change))

        return list(await asyncio.gather(*(one(c) for c in changes)))

    def _record(self, change: Change, outcome: Result, result: WriteResult) -> None:
        if outcome.error is not None and outcome.error.code == NOT_SENT:
            self.interrupted = True  # the executor records only what was sent
            return
        self._count(result, outcome.outcome)
        if self.ctx.dry_run and self.report is not None:
            self.report.add(change, outcome)
            if outcome.outcome in ("created", "adopted") and self.dry_plan is not None:
                self.dry_plan.add(self.schema.job, change.key)
        if outcome.error is not None:
            (result.errors if outcome.is_failure else result.notices).append(outcome.error)
        state = STATE[outcome.outcome]
        if outcome.outcome == "failed" and change.kind == "create" and change.remote_id is None:
            state = "pending" if outcome.error and outcome.error.retryable else "failed"
        digest: str | None = change.content_hash
        remote_hash = outcome.remote_hash
        if outcome.outcome == "unavailable":
            digest = UNAVAILABLE
        elif outcome.outcome == "conflict":
            digest = None  # in review: the id map keeps what was last sent…
            remote_hash = None  # …and the remote version last agreed on
            self._review.append((change, outcome))
        error = outcome.error
        sent = None
        if outcome.outcome in SENT:  # kept for later changes: a delete's path fields
            sent = {**(change.sent or {}), "fields": dict(change.record)}
        if self.gathers and outcome.outcome in gather.GATHERED:  # sent by ``finish``
            state, sent = "pending", gather.held(change, outcome)
        shared = None
        if self.pair is not None and state == "synced" and outcome.outcome != "conflict":
            shared = self._pairs.get(change.key) or self.pair.digest(
                [change.record.get(n) for n in self.names])
        self._settled.append(Settled(change.key, state, outcome.remote_id or change.remote_id,
                                     digest, error.message if error else None, remote_hash,
                                     retryable=error.retryable if error else None,
                                     sent=sent, pair_hash=shared))
        for name, (remote_id, file_hash) in (outcome.media or {}).items():
            self._settled.append(Settled(f"{change.key}#{name}", "synced", remote_id,
                                         file_hash, sent={"media": name}))

    @staticmethod
    def _count(result: WriteResult, outcome: str) -> None:
        counter = COUNTED[outcome]
        if counter in ("inserted", "updated", "skipped", "unchanged"):
            setattr(result, counter, getattr(result, counter) + 1)


async def _gather(previews: Iterator[Any]) -> list[Result | None]:
    return list(await asyncio.gather(*previews))


Pending = dict[str, "str | None"]  # key -> content hash of the intent an attempt left


def _ask(target: RecordTarget | AsyncRecordTarget, change: Change, pending: Pending) -> bool:
    """Ask the remote first: an interrupted attempt may have created this record."""
    return change.kind == "create" and change.key in pending and target.capabilities.lookup


def _as_update(change: Change, remote_id: str) -> Change:
    return Change("update", change.key, change.record, change.item, change.content_hash,
                  change.idempotency_key, remote_id)


def _adopted(update: Result, adopted: Result) -> Result:
    """An adopted record whose content changed since the intent was sent, then updated."""
    return adopted if update.outcome != "failed" else update


def _adopt_or_apply(target: RecordTarget, change: Change, pending: Pending) -> Result:
    found = target.find(change) if _ask(target, change, pending) else None
    if found is None:
        return target.apply(change)
    if pending[change.key] == change.content_hash or not target.capabilities.update:
        return Result("adopted", found)
    return _adopted(target.apply(_as_update(change, found)), Result("adopted", found))


def _not_sent(change: Change) -> Result:
    return Result.failed(ItemError("system", NOT_SENT, "the run was stopped before this "
                                   "record", change.item, retryable=True))


def _guarded(send: Callable[[], Result], change: Change) -> Result:
    try:
        return send()
    except AdapterError as exc:
        return Result.failed(_item_error(exc, change))


def _item_error(exc: AdapterError, change: Change) -> ItemError:
    return ItemError(exc.error_type, exc.code, str(exc), change.item,
                     retryable=exc.retryable)
