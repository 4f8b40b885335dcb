"""Dry runs of record targets: what a run would send, counted the way the real run counts.

A dry run of an export sends nothing and leaves the id map as it is. Each change is
shown to the target's ``preview`` (reads only: lookups, conflict checks), and the
report (creates, updates, deletes, conflicts, renames, deferred, and the requests with
secrets masked) is written to ``state_dir/dry-runs/RUN.json``, where ``syncd sync
--dry-run`` prints it from and ``GET /v1/sync/{id}`` returns it.

``syncd sync --all --dry-run`` shares one :class:`DryRunPlan` between its runs: the
records an upstream job would create count as synced for the references of the jobs
after it (with an assumed remote id ``{new:JOB:KEY}``), so each job's counts are the
ones the real ``--all`` gives.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from syncd.adapters import Change, Result

MAX_REQUESTS = 1000  # requests kept in a report; the counts always cover every record
#: a change's outcome → the report's counter
COUNTER = {"created": "creates", "adopted": "creates", "updated": "updates",
           "deleted": "deletes", "unavailable": "deletes", "conflict": "conflicts",
           "deferred": "deferred", "kept": "kept", "failed": "failed"}


class DryRunPlan:
    """The records the runs of one dry ``--all`` would create, per job (thread-safe)."""

    def __init__(self) -> None:
        self._created: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def add(self, job: str, key: str) -> None:
        with self._lock:
            self._created.setdefault(job, set()).add(key)

    def created(self, job: str) -> set[str]:
        with self._lock:
            return set(self._created.get(job, ()))


@dataclass
class Report:
    """One dry run's report (``dryRunReport`` in the API)."""

    job: str
    run_id: int
    creates: int = 0
    updates: int = 0
    deletes: int = 0
    conflicts: int = 0
    renames: int = 0
    deferred: int = 0
    kept: int = 0
    failed: int = 0
    unchanged: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    requests_total: int = 0
    renamed: list[dict[str, str]] = field(default_factory=list)

    def add(self, change: Change, outcome: Result) -> None:
        counter = COUNTER.get(outcome.outcome)
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)
        planned = outcome.planned
        if planned is None:
            return
        if planned.renamed is not None:
            self.renames += 1
            name, sent_as = planned.renamed
            self.renamed.append({"key": change.key, "name": name, "sentAs": sent_as})
        for method, url, body in planned.requests:
            self.requests_total += 1
            if len(self.requests) < MAX_REQUESTS:
                self.requests.append({"key": change.key, "method": method, "url": url,
                                      "body": body})

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["requestsTotal"] = data.pop("requests_total")
        data["runId"] = data.pop("run_id")
        return data

    def save(self, state_dir: Path | None) -> None:
        """Written whole (temporary file, then rename): readers never see half of it."""
        if state_dir is None:
            return
        path = report_path(state_dir, self.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.as_json(), ensure_ascii=False, default=str),
                             encoding="utf-8")
        os.replace(temporary, path)


def report_path(state_dir: Path, run_id: int) -> Path:
    return Path(state_dir) / "dry-runs" / f"{int(run_id)}.json"


def load_report(state_dir: Path | None, run_id: int) -> Mapping[str, Any] | None:
    """A dry run's report, or None (not a dry run of a record target, or not found)."""
    if state_dir is None:
        return None
    try:
        data = json.loads(report_path(state_dir, run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(report: Mapping[str, Any], limit: int = 50) -> list[str]:
    """The lines ``syncd sync --dry-run`` prints: the requests, then the counts."""
    lines = []
    for request in report.get("requests", [])[:limit]:
        body = request.get("body")
        shown = "" if body is None else " " + json.dumps(body, ensure_ascii=False,
                                                          sort_keys=True, default=str)
        lines.append(f"  would send {request['method']} {request['url']}{shown}")
    more = int(report.get("requestsTotal", 0)) - min(limit, len(report.get("requests", [])))
    if more > 0:
        lines.append(f"  … {more} more requests (GET /v1/sync/{report.get('runId')} "
                     "has the first 1000)")
    for renamed in report.get("renamed", [])[:limit]:
        lines.append(f"  would rename key {renamed['key']}: {renamed['name']!r} is taken, "
                     f"sent as {renamed['sentAs']!r}")
    lines.append(f"  dry run of {report.get('job')}: {report.get('creates', 0)} creates, "
                 f"{report.get('updates', 0)} updates, {report.get('deletes', 0)} deletes, "
                 f"{report.get('conflicts', 0)} conflicts, {report.get('renames', 0)} renames, "
                 f"{report.get('deferred', 0)} deferred, {report.get('unchanged', 0)} "
                 "unchanged")
    return lines
