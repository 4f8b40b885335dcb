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
from collections.abc import Callable, Iterator, Sequence
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
from syncd.errors import AdapterError
from syncd.store import idmap
from syncd.store.hashing import record_hash
from syncd.store.idmap import Settled

COUNTED = {"created": "inserted", "adopted": "inserted", "updated": "updated",
           "deleted": "missing", "unavailable": "missing", "deferred": "skipped",
           "failed": "failed"}
STATE = {"created": "synced", "adopted": "synced", "updated": "synced", "deleted": "deleted",
         "unavailable": "synced", "deferred": "deferred", "failed": "failed"}
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
    _settled: list[Settled] = field(default_factory=list)
    _loop: asyncio.Runner | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.schema.columns, *self.schema.constants)

    def open(self) -> None:
        if isinstance(self.target, AsyncRecordTarget):
            self._loop = asyncio.Runner()
            self._loop.run(self.target.open(self.schema, self.ctx))
        else:
            self.target.open(self.schema, self.ctx)

    def close(self) -> None:
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
        changes: list[Change] = []
        intents: list[tuple[str, str, str]] = []
        for record, key, item in zip(records, keys, items, strict=True):
            digest = record_hash(record)
            entry = known.get(key)
            if entry is not None and entry.state == "synced" and entry.content_hash == digest:
                result.unchanged += 1
                continue
            remote_id = entry.remote_id if entry is not None else None
            kind: ChangeKind = "update" if remote_id is not None else "create"
            if kind == "update" and not self.target.capabilities.update:
                result.errors.append(ItemError(
                    "conflict", "not_updatable", f"key {key!r} changed, and target "
                    f"{self.target.name} cannot update a record it sent", item))
                continue
            change = Change(kind, key, dict(zip(self.names, record, strict=True)), item,
                            digest, request_key(job, key, digest), remote_id)
            if kind == "create":
                intents.append((key, digest, change.idempotency_key))
            changes.append(change)
        if self.ctx.dry_run:
            for change in changes:
                self._count(result, "created" if change.kind == "create" else "updated")
            return result
        if intents:
            idmap.stage(job, intents)  # committed before anything is sent
        pending = {k: e.content_hash for k, e in known.items() if e.state == "pending"}
        for change, outcome in zip(changes, self._send(changes, pending), strict=True):
            self._record(change, outcome, result)
        return result

    def settle(self) -> None:
        """Write the batch's results into the id map: call inside the batch's transaction."""
        idmap.settle(self.schema.job, self._settled)
        self._settled.clear()

    # -- on_missing ---------------------------------------------------------------

    def missing(self, seen_keys: Iterator[Row]) -> list[idmap.Entry]:
        """Records the remote holds that the full read did not see."""
        seen = {key_text(k) for k in seen_keys}
        return [e for e in idmap.synced(self.schema.job)
                if e.local_key not in seen and e.content_hash != UNAVAILABLE]

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        """Delete or mark unavailable what was not seen; ``settle()`` records it."""
        caps = self.target.capabilities
        if on_missing == "keep" or not (caps.delete if on_missing == "delete"
                                        else caps.mark_unavailable):
            return 0
        gone = self.missing(seen_keys)
        if self.ctx.dry_run:
            return len(gone)
        kind: ChangeKind = "delete" if on_missing == "delete" else "mark_unavailable"
        changes = [Change(kind, e.local_key, {}, e.local_key, UNAVAILABLE,
                          request_key(self.schema.job, e.local_key, kind), e.remote_id)
                   for e in gone]
        result = WriteResult()
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
                results.append(Result.failed(ItemError(
                    "system", "cancelled", "the run was stopped before this record", change.item,
                    retryable=True)))
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
                    return Result.failed(ItemError("system", "cancelled", "the run was "
                                                   "stopped before this record", change.item,
                                                   retryable=True))
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
        self._count(result, outcome.outcome)
        if outcome.error is not None:
            result.errors.append(outcome.error)
        state = STATE[outcome.outcome]
        if outcome.outcome == "failed" and change.kind == "create" and change.remote_id is None:
            state = "pending" if outcome.error and outcome.error.retryable else "failed"
        digest = UNAVAILABLE if outcome.outcome == "unavailable" else change.content_hash
        error = outcome.error
        self._settled.append(Settled(change.key, state, outcome.remote_id or change.remote_id,
                                     digest, error.message if error else None,
                                     retryable=error.retryable if error else None))

    @staticmethod
    def _count(result: WriteResult, outcome: str) -> None:
        counter = COUNTED[outcome]
        if counter in ("inserted", "updated", "skipped"):
            setattr(result, counter, getattr(result, counter) + 1)


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


def _guarded(send: Callable[[], Result], change: Change) -> Result:
    try:
        return send()
    except AdapterError as exc:
        return Result.failed(_item_error(exc, change))


def _item_error(exc: AdapterError, change: Change) -> ItemError:
    return ItemError(exc.error_type, exc.code, str(exc), change.item,
                     retryable=exc.retryable)
