"""Queries of the ``id_map`` table: the outbox of export jobs (SPEC §6, §8)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from syncd.store.models import ID_MAP_STATES, IdMap, utcnow
from syncd.store.orm import pw

CHUNK = 500  # keys per IN list: far below every backend's parameter limit


@dataclass(frozen=True, slots=True)
class Entry:
    """What the id map knows of one local record."""

    local_key: str
    remote_id: str | None
    state: str
    content_hash: str | None
    request_key: str | None
    remote_hash: str | None = None
    sent: Mapping[str, Any] | None = None  # what the pending intent sends (final name …)
    pair_hash: str | None = None  # a bidirectional pair's shared fields as last written


@dataclass(frozen=True, slots=True)
class Settled:
    """The result of one change, to record: ``state`` is synced, failed, deferred or deleted.

    ``retryable`` says whether ``error`` is transient (later runs get through by
    themselves) or needs a person; ``remote_hash``, when a target reports it, is the
    hash of the remote record as it now stands (``syncd.store.hashing.remote_hash``).
    """

    local_key: str
    state: str
    remote_id: str | None = None
    content_hash: str | None = None
    error: str | None = None
    remote_hash: str | None = None
    retryable: bool | None = None
    #: replaces the row's ``sent`` (what later changes need, e.g. a delete's path fields)
    sent: Mapping[str, Any] | None = None
    pair_hash: str | None = None


def entries(job: str, keys: Sequence[str]) -> dict[str, Entry]:
    """The id map's rows for ``keys`` of ``job``."""
    found: dict[str, Entry] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = list(keys[start:start + CHUNK])
        for row in IdMap.select().where(IdMap.job == job, IdMap.local_key.in_(chunk)):
            found[row.local_key] = _entry(row)
    return found


Intent = tuple[str, str, str, "Mapping[str, Any] | None"]  # key, hash, request key, sent


def stage(job: str, intents: Iterable[Intent]) -> None:
    """Commit ``pending`` intents ``(local_key, content_hash, request_key, sent)`` before
    anything is sent."""
    intents = list(intents)
    known = entries(job, [k for k, _, _, _ in intents])
    now = utcnow()
    new = [{"job": job, "local_key": k, "state": "pending", "content_hash": h,
            "request_key": r, "sent": _dump(sent), "updated_at": now}
           for k, h, r, sent in intents if k not in known]
    for start in range(0, len(new), CHUNK):
        IdMap.insert_many(new[start:start + CHUNK]).execute()
    for key, digest, request, sent in intents:
        if key in known:
            (IdMap.update(state="pending", content_hash=digest, request_key=request,
                          sent=_dump(sent), updated_at=now)
             .where(IdMap.job == job, IdMap.local_key == key).execute())


def remote_ids(job: str, keys: Sequence[str]) -> dict[str, str]:
    """Local key → remote id of ``keys`` the remote holds (``synced``), e.g. references."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = list(keys[start:start + CHUNK])
        query = IdMap.select(IdMap.local_key, IdMap.remote_id).where(
            IdMap.job == job, IdMap.local_key.in_(chunk), IdMap.state == "synced",
            IdMap.remote_id.is_null(False))
        found.update((row.local_key, str(row.remote_id)) for row in query)
    return found


def known_remote(job: str, remote: Sequence[str]) -> set[str]:
    """Which of the ``remote`` ids ``job``'s id map holds."""
    found: set[str] = set()
    for start in range(0, len(remote), CHUNK):
        chunk = list(remote[start:start + CHUNK])
        query = IdMap.select(IdMap.remote_id).where(IdMap.job == job,
                                                     IdMap.remote_id.in_(chunk))
        found.update(str(row.remote_id) for row in query)
    return found


def by_remote(job: str, remote: Sequence[str]) -> dict[str, Entry]:
    """Remote id → the id map's row of ``job`` holding it (a pair's import)."""
    found: dict[str, Entry] = {}
    for start in range(0, len(remote), CHUNK):
        chunk = list(remote[start:start + CHUNK])
        for row in IdMap.select().where(IdMap.job == job, IdMap.remote_id.in_(chunk)):
            found[str(row.remote_id)] = _entry(row)
    return found


def agree(job: str, taken: Iterable[tuple[str, str, str]]) -> None:
    """A pair's import took these ``(local_key, remote_id, pair_hash)`` in from the
    remote: both sides now hold them, so the export has nothing to send. The remote
    version the export last saw is forgotten (the import holds a newer one)."""
    now = utcnow()
    for key, remote_id, digest in taken:
        updated = (IdMap.update(state="synced", remote_id=remote_id, pair_hash=digest,
                                remote_hash=None, last_error=None, error_retryable=None,
                                attempts=0, synced_at=now, updated_at=now)
                   .where(IdMap.job == job, IdMap.local_key == key).execute())
        if not updated:
            IdMap.create(job=job, local_key=key, remote_id=remote_id, state="synced",
                         pair_hash=digest, attempts=0, synced_at=now, updated_at=now)


def settle(job: str, results: Iterable[Settled]) -> None:
    """Record what each change came to (inside the batch's transaction).

    One UPDATE per group of rows alike in which columns they set (per-row values by
    ``CASE local_key``): a batch settles in a few statements, not one per record, so the
    remote is kept waiting as briefly as possible between batches.
    """
    latest = {r.local_key: r for r in results}  # a key settled twice: its last outcome
    groups: dict[tuple[Any, ...], list[Settled]] = {}
    for r in latest.values():
        shape = (r.state, r.retryable if r.error is not None else None,
                 r.remote_id is not None, r.remote_hash is not None,
                 r.state == "synced" and r.content_hash is not None, r.sent is not None,
                 r.pair_hash is not None)
        groups.setdefault(shape, []).append(r)
    now = utcnow()
    for (state, retryable, *_), rows in groups.items():
        for start in range(0, len(rows), SETTLE_CHUNK):
            _settle_alike(job, state, retryable, rows[start:start + SETTLE_CHUNK], now)


SETTLE_CHUNK = 100  # rows per UPDATE: 2 parameters a row and column, within old SQLite's 999


def _settle_alike(job: str, state: str, retryable: bool | None, rows: list[Settled],
                  now: Any) -> None:
    keys = [r.local_key for r in rows]
    first = rows[0]
    values: dict[object, object] = {
        IdMap.state: state, IdMap.updated_at: now, IdMap.attempts: IdMap.attempts + 1,
        IdMap.last_error: _per_row(rows, "error"), IdMap.error_retryable: retryable}
    if first.remote_id is not None:
        values[IdMap.remote_id] = _per_row(rows, "remote_id")
    if first.remote_hash is not None:
        values[IdMap.remote_hash] = _per_row(rows, "remote_hash")
    if first.pair_hash is not None:
        values[IdMap.pair_hash] = _per_row(rows, "pair_hash")
    if first.sent is not None:
        values[IdMap.sent] = pw.Case(IdMap.local_key,
                                     [(r.local_key, _dump(r.sent)) for r in rows])
    if state == "synced":
        if first.content_hash is not None:  # None: a conflict in review keeps the old one
            values[IdMap.content_hash] = _per_row(rows, "content_hash")
        values[IdMap.synced_at] = now
        values[IdMap.attempts] = 0
    updated = IdMap.update(values).where(IdMap.job == job, IdMap.local_key.in_(keys)).execute()
    if updated == len(rows):
        return
    there = {row.local_key for row in IdMap.select(IdMap.local_key).where(
        IdMap.job == job, IdMap.local_key.in_(keys))}
    for r in rows:
        if r.local_key not in there:
            IdMap.create(job=job, local_key=r.local_key, state=r.state,
                         remote_id=r.remote_id, content_hash=r.content_hash,
                         remote_hash=r.remote_hash, last_error=r.error, sent=_dump(r.sent),
                         pair_hash=r.pair_hash,
                         error_retryable=retryable, attempts=1, updated_at=now,
                         synced_at=now if r.state == "synced" else None)


def _per_row(rows: list[Settled], name: str) -> object:
    """One value for every row, or ``CASE local_key WHEN … THEN … END``."""
    values = [getattr(r, name) for r in rows]
    if all(v == values[0] for v in values):
        return values[0]
    return pw.Case(IdMap.local_key, [(r.local_key, v) for r, v in zip(rows, values,
                                                                        strict=True)])


def synced(job: str) -> Iterator[Entry]:
    """Every record of ``job`` the remote holds, in key order (for ``on_missing``)."""
    query = (IdMap.select().where(IdMap.job == job, IdMap.state == "synced")
             .order_by(IdMap.local_key))
    for row in query.iterator():
        yield _entry(row)


def pending_marked(job: str, marker: str) -> Iterator[Entry]:
    """``job``'s pending rows whose ``sent`` holds ``marker`` (e.g. a gathered change)."""
    query = (IdMap.select().where(IdMap.job == job, IdMap.state == "pending",
                                  IdMap.sent.contains(f'"{marker}"'))
             .order_by(IdMap.local_key))
    for row in query.iterator():
        yield _entry(row)


def listing(job: str, state: str | None = None, limit: int = 100,
            before: int | None = None) -> list[IdMap]:
    """A page of ``job``'s id map, newest row first (``syncd idmap``, the API)."""
    query = IdMap.select().where(IdMap.job == job)
    if state:
        query = query.where(IdMap.state == state)
    if before:
        query = query.where(IdMap.id < before)
    return list(query.order_by(IdMap.id.desc()).limit(limit))


def state_counts(job: str | None = None) -> dict[str, dict[str, int]]:
    """Rows by job and state (every state present, 0 when none), for the ledger and metrics."""
    query = IdMap.select(IdMap.job, IdMap.state, pw.fn.COUNT(IdMap.id))
    if job is not None:
        query = query.where(IdMap.job == job)
    counts: dict[str, dict[str, int]] = {}
    # peewee's stubs type ``.tuples()`` rows as models
    rows = cast(Iterable[tuple[str, str, int]], query.group_by(IdMap.job, IdMap.state).tuples())
    for name, state, n in rows:
        counts.setdefault(name, dict.fromkeys(ID_MAP_STATES, 0))[state] = n
    return counts


def _entry(row: IdMap) -> Entry:
    return Entry(row.local_key, row.remote_id, row.state, row.content_hash, row.request_key,
                 row.remote_hash, json.loads(row.sent) if row.sent else None, row.pair_hash)


def _dump(sent: Mapping[str, Any] | None) -> str | None:
    return json.dumps(dict(sent), ensure_ascii=False, sort_keys=True) if sent else None
