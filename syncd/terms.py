"""Words several layers share, defined once: run statuses, counters, error types, time.

They are part of the contract (SPEC §5, §6): scripts read them from the tables and
the API, so the store, the engine, the API and the CLI all take them from here.
"""

from __future__ import annotations

from datetime import UTC, datetime

RUN_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
UNFINISHED = ("pending", "in_progress")
FINISHED = frozenset({"completed", "failed", "cancelled"})
#: ``sync_runs.items_<name>``; ``missing`` counts what on_missing removed or marked
COUNTERS = ("processed", "inserted", "updated", "unchanged", "skipped", "failed", "missing")
ERROR_TYPES = ("validation", "parsing", "network", "auth", "rate_limit", "conflict", "target",
               "system")


def utc_iso(moment: datetime | None = None) -> str:
    """ISO-8601 in UTC with a ``Z``; a naive ``moment`` is taken as UTC (as stored)."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def file_stamp() -> str:
    """Now as a sortable file-name prefix: ``20261129T130501123456Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
