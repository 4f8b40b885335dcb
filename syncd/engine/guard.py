"""The mass-removal guard: a full sync may not remove most of a job's records unasked.

An empty, truncated or wrong file read as complete would otherwise delete (or mark
unavailable) everything it lacks. ``max_missing`` (``"50%"`` of the records in scope
by default, or a count) bounds what one run may remove; a person confirms more with
``syncd sync --allow-mass-missing`` or ``"allowMassMissing": true``.
"""

from __future__ import annotations

from collections.abc import Iterator

from syncd.adapters import Row
from syncd.errors import JobError


class MassMissing(JobError):
    """A run stopped before removing more than ``max_missing`` records."""

    code = "mass_missing"


class Counted:
    """Passes keys through, counting them (the records the source still has)."""

    def __init__(self, keys: Iterator[Row]) -> None:
        self.keys, self.count = keys, 0

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        key = next(self.keys)
        self.count += 1
        return key


def limit_of(max_missing: str | int, total: int) -> int:
    """How many of ``total`` records one run may remove."""
    if isinstance(max_missing, str) and max_missing.endswith("%"):
        return int(total * float(max_missing[:-1]) / 100)
    return int(max_missing)


def check(job: str, on_missing: str, max_missing: str | int, missing: int, kept: int) -> None:
    """Raise ``MassMissing`` when ``missing`` of ``missing + kept`` is over the limit."""
    total = missing + kept
    if missing <= limit_of(max_missing, total):
        return
    verb = "delete" if on_missing == "delete" else "mark unavailable"
    share = f"{missing * 100 // total}%" if total else "all"
    raise MassMissing(
        f"stopped before removing records: on_missing would {verb} {missing:,} of the "
        f"{total:,} records of job {job!r} ({share}), more than max_missing = "
        f"{max_missing!r}; nothing was removed",
        hint=f"if the source is right, confirm with `syncd sync {job} --allow-mass-missing` "
             "(API: \"allowMassMissing\": true), or raise max_missing")
