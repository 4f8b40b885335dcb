"""The ``sync_conflicts`` review queue (SPEC §6, §8): records changed on both sides.

A target whose ``conflict = "review"`` meets a record changed locally and remotely
since the last sync calls ``record``; the pair waits here for a person. Resolving
(``resolve``) writes what the person decided into the id map, so that the next
export run acts on it without asking again:

``keep="local"``
    the id map row becomes ``pending`` with its ``content_hash`` cleared and its
    ``remote_hash`` set to the remote version the person saw. The next run therefore
    sends the local record as an update (it no longer matches what was last sent),
    and the remote, unchanged since it was seen, is overwritten without a new
    conflict. Should the remote change yet again before that run, it is a new conflict.
``keep="remote"``
    the row becomes ``synced`` with ``content_hash`` = the local version in the
    conflict and ``remote_hash`` = the remote version: both sides count as agreed.
    The next run sends nothing for the record; once the local record changes again,
    it is sent as an ordinary update. (With an import job on the same table, that
    job's next run takes the remote version in.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.errors import UserError
from syncd.store import hashing
from syncd.store.models import KEEP, IdMap, SyncConflict, utcnow


class UnknownConflict(UserError):
    """No conflict has this id."""


class AlreadyResolved(UserError):
    """The conflict was resolved before (by someone else, or twice)."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """A resolved conflict and the id map row as the next run will find it."""

    conflict: SyncConflict
    state: str  # the id map's new state: pending (keep local) or synced (keep remote)


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(dict(record), ensure_ascii=False, default=str)


def record(job: str, local_key: str, remote_id: str | None, local_record: Mapping[str, Any],
           remote_record: Mapping[str, Any], *, local_hash: str | None = None,
           remote_hash: str | None = None) -> int:
    """Put a conflict in the queue; the id of its row.

    An open conflict of the same job and key is replaced (same id, new records), not
    doubled. ``local_hash`` defaults to the outbox's content hash of ``local_record``'s
    values (in mapping order, as ``Change.record`` holds them), ``remote_hash`` to
    ``hashing.remote_hash(remote_record)``; pass them when the target computed its own.
    """
    values = {"remote_id": remote_id, "local_record": _dumps(local_record),
              "remote_record": _dumps(remote_record),
              "local_hash": local_hash or hashing.record_hash(list(local_record.values())),
              "remote_hash": remote_hash or hashing.remote_hash(remote_record),
              "updated_at": utcnow()}
    with SyncConflict._meta.database.atomic():
        found = (SyncConflict.select(SyncConflict.id)
                 .where(SyncConflict.job == job, SyncConflict.local_key == local_key,
                        SyncConflict.status == "open").order_by(SyncConflict.id).first())
        if found is not None:
            SyncConflict.update(values).where(SyncConflict.id == found.id).execute()
            return found.id
        row = SyncConflict.create(job=job, local_key=local_key, status="open", **values)
        return row.id


def listing(status: str | None = None, job: str | None = None, limit: int = 100,
            before: int | None = None) -> list[SyncConflict]:
    """Conflicts, newest first; page on with ``before`` = the last id shown."""
    query = SyncConflict.select()
    if status:
        query = query.where(SyncConflict.status == status)
    if job:
        query = query.where(SyncConflict.job == job)
    if before:
        query = query.where(SyncConflict.id < before)
    return list(query.order_by(SyncConflict.id.desc()).limit(limit))


def get(conflict_id: int) -> SyncConflict | None:
    return SyncConflict.get_or_none(SyncConflict.id == conflict_id)


def open_ids(job: str, keys: list[str]) -> dict[str, int]:
    """The open conflict of each of ``keys`` that has one (for the id map's ledger)."""
    if not keys:
        return {}
    query = (SyncConflict.select(SyncConflict.local_key, SyncConflict.id)
             .where(SyncConflict.job == job, SyncConflict.status == "open",
                    SyncConflict.local_key.in_(keys)))
    return {row.local_key: row.id for row in query}


def open_counts() -> dict[str, int]:
    """Open conflicts per job (for the metrics)."""
    query = (SyncConflict.select(SyncConflict.job, SyncConflict.id)
             .where(SyncConflict.status == "open"))
    counts: dict[str, int] = {}
    for row in query:
        counts[row.job] = counts.get(row.job, 0) + 1
    return counts


def resolve(conflict_id: int, keep: str) -> Resolution:
    """Close the conflict keeping one side, and tell the id map (see the module's text)."""
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, not {keep!r}")
    now = utcnow()
    with SyncConflict._meta.database.atomic():
        conflict = get(conflict_id)
        if conflict is None:
            raise UnknownConflict(f"no conflict {conflict_id}",
                                  hint="list them with: syncd conflicts")
        closed = (SyncConflict.update(status="resolved", resolution=keep, resolved_at=now)
                  .where(SyncConflict.id == conflict_id, SyncConflict.status == "open")
                  .execute())
        if not closed:  # resolved before, possibly a moment ago by someone else
            raise AlreadyResolved(f"conflict {conflict_id} is already resolved "
                                  f"(kept {conflict.resolution or 'unknown'})")
        state = "pending" if keep == "local" else "synced"
        values: dict[str, Any] = {
            "state": state, "remote_hash": conflict.remote_hash, "last_error": None,
            "error_retryable": None, "attempts": 0, "updated_at": now,
            "content_hash": None if keep == "local" else conflict.local_hash}
        if keep == "remote":
            values["synced_at"] = now
        if conflict.remote_id is not None:
            values["remote_id"] = conflict.remote_id
        updated = (IdMap.update(values)
                   .where(IdMap.job == conflict.job, IdMap.local_key == conflict.local_key)
                   .execute())
        if not updated:  # met before the id map knew the record (e.g. by a lookup)
            IdMap.create(job=conflict.job, local_key=conflict.local_key, **values)
    resolved = get(conflict_id)
    assert resolved is not None
    return Resolution(resolved, state)
