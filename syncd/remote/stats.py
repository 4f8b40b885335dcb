"""Counts of what HTTP clients did, per remote, for ``/metrics``.

Clients live in the runs' worker threads and the metrics endpoint on the daemon's
loop, so the counts are process-wide and guarded by a lock; ``syncd.api.metrics``
reads a snapshot of them at scrape time.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Snapshot:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (remote, status)
    retries: dict[str, int] = field(default_factory=dict)
    rate_limit_wait_s: dict[str, float] = field(default_factory=dict)


_requests: Counter[tuple[str, str]] = Counter()
_retries: Counter[str] = Counter()
_waits: dict[str, float] = {}


def request(remote: str, status: int | str) -> None:
    """One answer (its HTTP status) or one failure to get one (``"error"``)."""
    with _LOCK:
        _requests[(remote, str(status))] += 1


def retry(remote: str) -> None:
    with _LOCK:
        _retries[remote] += 1


def waited(remote: str, seconds: float) -> None:
    """Seconds a request waited for the remote's rate limit (or its pause)."""
    if seconds > 0:
        with _LOCK:
            _waits[remote] = _waits.get(remote, 0.0) + seconds


def snapshot() -> Snapshot:
    with _LOCK:
        return Snapshot(dict(_requests), dict(_retries), dict(_waits))
