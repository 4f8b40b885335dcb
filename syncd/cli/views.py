"""How the client commands word runs: the ``runs`` table, ``show``'s fields, summaries.

Pure functions of the API's run objects (SPEC §5), with times shown in local time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

Run = dict[str, Any]

_COLUMNS = (("id", "syncRunId"), ("job", "job"), ("trigger", "trigger"), ("status", "status"),
            ("processed", "itemsProcessed"), ("inserted", "itemsInserted"),
            ("updated", "itemsUpdated"), ("unchanged", "itemsUnchanged"),
            ("failed", "itemsFailed"), ("started", "startedAt"))


def runs_table(runs: list[Run]) -> str:
    """Runs as aligned columns: numbers to the right, words to the left."""
    rows = [[title for title, _ in _COLUMNS]]
    for run in runs:
        row = [str(run.get(key) if run.get(key) is not None else "-") for _, key in _COLUMNS]
        row[-1] = _when(run.get("startedAt"))
        if run.get("dryRun"):
            row[3] += " (dry)"
        rows.append(row)
    numeric = [isinstance(runs[0].get(key), int) for _, key in _COLUMNS]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if right else cell.ljust(width)
                 for cell, width, right in zip(row, widths, numeric, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def show_fields(run: Run) -> list[tuple[str, str]]:
    """The lines of ``syncd show``, in reading order; empty fields are left out."""
    counts = (f"{run['itemsProcessed']} processed, {run['itemsInserted']} inserted, "
              f"{run['itemsUpdated']} updated, {run['itemsUnchanged']} unchanged, "
              f"{run['itemsSkipped']} skipped, {run['itemsFailed']} failed, "
              f"{run.get('itemsMissing') or 0} missing")
    checkpoint = run.get("checkpoint")
    fields = [
        ("run", str(run["syncRunId"])),
        ("job", run["job"]),
        ("status", run["status"] + (" (dry run: nothing written)" if run.get("dryRun")
                                    else "")),
        ("trigger", f"{run['trigger']}, attempt {run.get('attempt') or 1}"),
        ("retry of", f"run {run['parentRun']}" if run.get("parentRun") else ""),
        ("source", " ".join(str(v) for v in (run.get("sourceType"),
                                             run.get("sourceIdentifier")) if v)),
        ("host", run.get("host") or ""),
        ("created", _when(run.get("createdAt"))),
        ("started", _when(run.get("startedAt"))),
        ("completed", _when(run.get("completedAt"))),
        ("duration", _duration(run)),
        ("items", counts),
        ("checkpoint", json.dumps(checkpoint) if checkpoint is not None else ""),
        ("error", run.get("errorMessage") or ""),
    ]
    return [(label, value) for label, value in fields if value and value != "-"]


def error_lines(run: Run, retryable: bool = False) -> list[str]:
    """A run's errors as ``syncd sync`` prints them: ``type/code: item: message``."""
    errors = run.get("errors") or []
    lines = []
    for error in errors:
        where = f"{error['item']}: " if error.get("item") else ""
        again = " (retryable)" if retryable and error.get("retryable") else ""
        lines.append(f"  {error['type']}/{error['code']}: {where}{error['message']}{again}")
    more = run.get("errorsTotal", len(errors)) - len(errors)
    if more > 0:
        lines.append(f"  … {more} more errors in sync_errors")
    return lines


def summary(run: Run) -> str:
    """One line saying what a run did, worded as ``syncd sync`` words it."""
    label = " (dry run: nothing written)" if run.get("dryRun") else ""
    missing = f", {run['itemsMissing']} missing" if run.get("itemsMissing") else ""
    text = (f"run {run['syncRunId']} {run['job']} {run['status']}{label}: "
            f"{run['itemsProcessed']} processed, {run['itemsInserted']} inserted, "
            f"{run['itemsUpdated']} updated, {run['itemsUnchanged']} unchanged, "
            f"{run['itemsSkipped']} skipped, {run['itemsFailed']} failed{missing}")
    seconds = _seconds(run)
    if seconds is not None:
        rate = run["itemsProcessed"] / seconds if seconds > 0 else 0
        text += f" in {seconds:.1f}s ({rate:,.0f}/s)"
    if run.get("errorMessage") and run["status"] != "completed":
        text += f"\n  error: {run['errorMessage']}"
    return text


# -- times -----------------------------------------------------------------------------


def _moment(value: object) -> datetime | None:
    """An ISO-8601 timestamp from the API; naive ones are UTC, as the API writes them."""
    if not isinstance(value, str) or not value:
        return None
    text = value.removesuffix("Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(value: object) -> str:
    """A timestamp in local time, to the second; the raw text if it does not parse."""
    moment = _moment(value)
    if moment is None:
        return str(value) if value else "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _seconds(run: Run) -> float | None:
    began, ended = _moment(run.get("startedAt")), _moment(run.get("completedAt"))
    if began is None or ended is None:
        return None
    return max((ended - began).total_seconds(), 0.0)


def _duration(run: Run) -> str:
    seconds = _seconds(run)
    return "" if seconds is None else f"{seconds:.1f}s"
