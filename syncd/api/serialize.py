"""Runs and errors as the API shows them (camelCase, ISO-8601 UTC timestamps)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.terms import utc_iso

if TYPE_CHECKING:
    from syncd.store.models import SyncError, SyncRun


def iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for raw-SQL writes
        value = datetime.fromisoformat(value)
    return utc_iso(value)


def run_json(run: SyncRun) -> dict[str, Any]:
    return {
        "syncRunId": run.id, "job": run.job, "trigger": run.trigger, "status": run.status,
        "sourceType": run.source_type, "sourceIdentifier": run.source_identifier,
        "itemsProcessed": run.items_processed, "itemsInserted": run.items_inserted,
        "itemsUpdated": run.items_updated, "itemsUnchanged": run.items_unchanged,
        "itemsSkipped": run.items_skipped, "itemsFailed": run.items_failed,
        "itemsMissing": run.items_missing,
        "createdAt": iso(run.created_at), "startedAt": iso(run.started_at),
        "completedAt": iso(run.completed_at),
        "checkpoint": json.loads(run.checkpoint) if run.checkpoint else None,
        "errorMessage": run.error_message, "attempt": run.attempt,
        "parentRun": run.parent_run, "dryRun": bool(run.dry_run), "host": run.host,
        "device": json.loads(run.device) if run.device else None,
        "claimedBy": run.claimed_by, "leaseUntil": iso(run.lease_until),
        "affinity": run.affinity,
    }


def error_json(error: SyncError) -> dict[str, Any]:
    return {"type": error.error_type, "code": error.error_code,
            "message": error.error_message, "item": error.item_identifier,
            "retryable": bool(error.is_retryable)}
