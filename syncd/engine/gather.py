"""Changes a ``gather`` record target sends together at the end of a run (a digest mail).

``apply`` only collects a change; the outbox then keeps it in the id map as ``pending``
with what ``finish`` will need under ``sent["gathered"]`` (what it came to, the content
hash, the item) and, for a delete, the fields as last sent. ``finish`` is handed every
such row of the job, this run's and those an earlier failed or killed run left, and
only what it accepts becomes ``synced`` (or ``deleted``): a failed send leaves them
pending, and the next run's ``finish`` sends them with its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from syncd.adapters import Change, ChangeKind, ItemError, Result
from syncd.errors import AdapterError
from syncd.store import idmap
from syncd.store.idmap import Settled

GATHERED = ("created", "updated", "deleted")
KINDS: dict[str, ChangeKind] = {"created": "create", "updated": "update", "deleted": "delete"}
STATES = {"created": "synced", "updated": "synced", "deleted": "deleted"}


class Unsent(AdapterError):
    """Some gathered changes were not accepted: the run fails with the first one's error
    (a retryable ``network`` error for a server that is away); they stay pending."""

    def __init__(self, error: ItemError, failed: int, total: int) -> None:
        super().__init__(f"{failed} of {total} gathered changes not sent, left for the "
                         f"next attempt: {error.message}", code=error.code)
        self.error_type = error.type
        self.retryable = error.retryable


def held(change: Change, outcome: Result) -> dict[str, Any]:
    """The id map's ``sent`` of a gathered change: what ``finish`` needs to send it."""
    sent = dict(change.sent or {})
    if change.kind != "delete":  # a delete keeps the fields as they were last sent
        sent["fields"] = dict(change.record)
        sent["order"] = list(change.record)  # ``sent`` is stored with its keys sorted
    sent["gathered"] = {"outcome": outcome.outcome, "hash": change.content_hash,
                        "item": change.item, "key": change.idempotency_key}
    return sent


def pending(job: str) -> list[Change]:
    """Every gathered change of ``job`` not yet accepted, in key order."""
    changes = []
    for entry in idmap.pending_marked(job, "gathered"):
        sent = dict(entry.sent or {})
        gathered = sent.get("gathered")
        if not isinstance(gathered, dict) or gathered.get("outcome") not in KINDS:
            continue
        fields = dict(sent.get("fields") or {})
        order = [n for n in sent.get("order") or () if n in fields]
        fields = {n: fields[n] for n in [*order, *(n for n in fields if n not in order)]}
        changes.append(Change(KINDS[gathered["outcome"]], entry.local_key, fields,
                              str(gathered.get("item") or entry.local_key),
                              str(gathered.get("hash") or ""), str(gathered.get("key") or ""),
                              entry.remote_id, sent=sent))
    return changes


def send(job: str, finish: Callable[[list[Change]], list[Result]],
         settled: list[Settled], gathers: bool) -> None:
    """Hand the target's ``finish`` what is pending (nothing unless it ``gathers``); add
    what came of it to ``settled``, then raise ``Unsent`` if some were not accepted (the
    executor commits ``settled`` either way)."""
    changes = pending(job) if gathers else []
    results = finish(changes)
    if len(results) != len(changes):
        raise RuntimeError(f"the target answered {len(results)} results for "
                           f"{len(changes)} gathered changes")
    settled.extend(accepted(changes, results))
    failed = [r.error for r in results if r.outcome == "failed"]
    if failed:
        first = failed[0] or ItemError("network", "unsent", "not sent", retryable=True)
        raise Unsent(first, len(failed), len(changes))


def accepted(changes: Iterable[Change], results: Iterable[Result]) -> list[Settled]:
    """What the id map records once ``finish`` answered: sent ones synced (or deleted),
    failed ones left pending with their error."""
    settled = []
    for change, result in zip(changes, results, strict=True):
        sent = {k: v for k, v in (change.sent or {}).items() if k != "gathered"}
        gathered = (change.sent or {}).get("gathered") or {}
        error = result.error
        if result.outcome == "failed" or result.outcome not in STATES:
            settled.append(Settled(change.key, "pending", change.remote_id, None,
                                   error.message if error else "not sent",
                                   retryable=error.retryable if error else True))
            continue
        settled.append(Settled(change.key, STATES[str(gathered.get("outcome"))],
                               result.remote_id or change.remote_id, change.content_hash,
                               sent=sent or None))
    return settled
