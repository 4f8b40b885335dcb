"""The values a SQL target writes: every column is text, and a record's content hash.

Split from :mod:`sql_target` (the statements); both the write and ``reconcile`` make
values text the same way, so a key compares equal however a source typed it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeGuard


def content_hash(values: Sequence[Any]) -> str | None:
    """A digest of a record's values: equal digests mean nothing to rewrite.

    None when a value holds a NUL byte, which PostgreSQL cannot store in text: such a
    record is refused on every backend alike.
    """
    return content_hashes([values])[0]


def content_hashes(rows: Sequence[Sequence[Any]]) -> list[str | None]:
    """``content_hash`` of many rows, in one pass without a call per row (the hot path)."""
    return stored_rows(rows)[1]


def stored_rows(rows: Sequence[Sequence[Any]]) -> tuple[list[Any], list[str | None]]:
    """The rows as the table stores them (text, or NULL), and their content hashes.

    Every column is text, so a plugin's int key 7 is stored, looked up and hashed as
    ``"7"``: the same record compares equal on every run and every backend.
    """
    try:
        joined = ["\x1f".join(values) for values in rows]  # the common case: all text (CSV)
    except TypeError:
        rows = [tuple([as_text(v) for v in values]) for values in rows]
        joined = ["\x1f".join(["" if v is None else v for v in values]) for values in rows]
    blake2b = hashlib.blake2b
    digests: list[str | None] = [
        blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        for text in joined]
    if "\x00" in "".join(joined):
        digests = [None if "\x00" in text else d for text, d in zip(joined, digests,
                                                                      strict=True)]
    return list(rows), digests


def hashed_all(digests: list[str | None]) -> TypeGuard[list[str]]:
    """No row of ``stored_rows`` was refused for a NUL byte."""
    return None not in digests


def as_text(value: Any) -> str | None:
    """One value as a text column holds it; the same value gives the same text every run."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)
