"""The id map and the conflict queue as a per-record ledger, for the API and the CLI.

One shape for both (camelCase, ISO-8601 UTC), so ``syncd idmap`` prints what
``GET /v1/jobs/{name}/idmap`` answers. What the next run does with each record is the
engine's knowledge, so it is said here (``transient``):

    synced, deleted           nothing to do (null)
    pending, deferred         later runs send it by themselves (true)
    failed, transient error   (network, 429, 5xx) later runs retry it and should get
                              through by themselves (true)
    failed, permanent error   (a 4xx, a refused record, auth) later runs try again
                              but fail the same way until a person fixes the record,
                              the config or the remote (false)
    open conflict             waits for ``syncd resolve`` (false), whatever the state
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from syncd.config.secrets import revealed_values
from syncd.store import conflicts, idmap
from syncd.store.models import ID_MAP_STATES, IdMap, SyncConflict
from syncd.terms import utc_iso

MASK = "***"


def masked(text: str | None) -> str | None:
    """``text`` with every secret value this process has read blanked out."""
    if not text:
        return text
    for secret in revealed_values():
        if len(secret) >= 4:  # a one-letter "secret" would blank every word
            text = text.replace(secret, MASK)
    return text


def _iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for raw-SQL writes
        value = datetime.fromisoformat(value)
    return utc_iso(value)


def transient(row: IdMap, conflict_id: int | None = None) -> bool | None:
    """Will later runs take care of this record by themselves? None: nothing to do."""
    if conflict_id is not None:
        return False
    if row.state in ("synced", "deleted"):
        return None
    if row.state == "failed":
        return bool(row.error_retryable)
    return True  # pending (an intent, or a create that failed transiently), deferred


def entry_json(row: IdMap, conflict_id: int | None = None) -> dict[str, Any]:
    """One id map row with what becomes of it."""
    return {"id": row.id, "localKey": row.local_key, "remoteId": row.remote_id,
            "state": row.state, "attempts": row.attempts, "lastError": masked(row.last_error),
            "errorRetryable": row.error_retryable,
            "transient": transient(row, conflict_id),
            "needsPerson": transient(row, conflict_id) is False,
            "conflictId": conflict_id, "contentHash": row.content_hash,
            "remoteHash": row.remote_hash, "syncedAt": _iso(row.synced_at),
            "updatedAt": _iso(row.updated_at)}


def idmap_page(job: str, state: str | None = None, limit: int = 100,
               before: int | None = None) -> dict[str, Any]:
    """A page of ``job``'s id map, newest row first, with the counts by state."""
    rows = idmap.listing(job, state, limit + 1, before)
    more, rows = len(rows) > limit, rows[:limit]
    open_conflicts = conflicts.open_ids(job, [r.local_key for r in rows])
    counts = idmap.state_counts(job).get(job) or dict.fromkeys(ID_MAP_STATES, 0)
    return {"job": job, "counts": counts,
            "entries": [entry_json(r, open_conflicts.get(r.local_key)) for r in rows],
            "nextBefore": rows[-1].id if more and rows else None}


def _record(text: str) -> Any:
    try:
        return json.loads(masked(text) or "null")
    except ValueError:  # masking cut into the JSON: show it as text
        return masked(text)


def conflict_json(row: SyncConflict) -> dict[str, Any]:
    return {"id": row.id, "job": row.job, "localKey": row.local_key,
            "remoteId": row.remote_id, "localRecord": _record(row.local_record),
            "remoteRecord": _record(row.remote_record), "status": row.status,
            "resolution": row.resolution, "createdAt": _iso(row.created_at),
            "updatedAt": _iso(row.updated_at), "resolvedAt": _iso(row.resolved_at)}


def conflicts_page(status: str | None = None, job: str | None = None, limit: int = 100,
                   before: int | None = None) -> dict[str, Any]:
    """Conflicts, newest first; ``nextBefore`` pages on."""
    rows = conflicts.listing(status, job, limit + 1, before)
    more, rows = len(rows) > limit, rows[:limit]
    return {"conflicts": [conflict_json(r) for r in rows],
            "nextBefore": rows[-1].id if more and rows else None}


def resolve(conflict_id: int, keep: str) -> dict[str, Any]:
    """Resolve a conflict; the answer says what the next run of its job does."""
    done = conflicts.resolve(conflict_id, keep)
    next_run = ("sends the local record as an update, overwriting the remote"
                if keep == "local" else
                "sends nothing for it; a later local change goes out as an update")
    return {**conflict_json(done.conflict), "idmapState": done.state, "nextRun": next_run}
