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

_BLAKE2B = hashlib.blake2b(digest_size=16)


def content_hash(values: Sequence[Any]) -> str | None:
    """A digest of a record's values: equal digests mean nothing to rewrite.

    None when a value holds a NUL byte, which PostgreSQL cannot store in text: such a
    record is refused on every backend alike.
    """
    return content_hashes([values])[0]


def content_hashes(rows: Sequence[Sequence[Any]]) -> list[str | None]:
    """``content_hash`` of many rows, in one pass without a call per row (the hot path)."""
    return stored_rows(rows)[1]


def stored_rows(rows: Sequence[Sequence[Any]], constants: tuple[str, ...] = ()
                ) -> tuple[list[Any], list[str | None]]:
    """The rows as the table stores them (text, or NULL), and their content hashes.

    Every column is text, so a plugin's int key 7 is stored, looked up and hashed as
    ``"7"``: the same record compares equal on every run and every backend. Each
    row's hash covers ``constants`` after its values, as if they were appended, but
    they are not: a re-sync then builds no row it does not write. (Rows hold at least
    one value when there are constants.)
    """
    suffix = "".join(["\x1f" + c for c in constants])
    join = "\x1f".join
    try:  # the common case: all text (CSV)
        joined = [join(values) + suffix for values in rows] if suffix else [
            join(values) for values in rows]
    except TypeError:
        rows = [tuple([as_text(v) for v in values]) for values in rows]
        joined = [join(["" if v is None else v for v in values]) + suffix for values in rows]
    digests: list[str | None] = []
    append, fresh = digests.append, _BLAKE2B.copy
    for text in joined:  # a copy of a made hasher: a fifth cheaper than a new one
        hasher = fresh()
        hasher.update(text.encode("utf-8", "surrogatepass"))
        append(hasher.hexdigest())
    if "\x00" in "".join(joined):
        digests = [None if "\x00" in text else d for text, d in zip(joined, digests,
                                                                      strict=True)]
    return list(rows), digests


class KeyedRows(list):
    """A batch as the SQL target's preparer leaves it: rows in key order, with each row's
    content hash (over ``constants`` too) in ``digests``. A plain list means the batch
    was not prepared."""

    digests: list[str | None]
    constants: tuple[str, ...]


def keyed_rows(constants: tuple[str, ...], key_index: tuple[int, ...], rows: list[Any],
               items: list[str]) -> tuple[list[Any], list[str]]:
    """The SQL target's preparer (run by the engine, maybe in a reader process): hash the
    rows and put them in key order; rows with a NUL byte are left to ``write``."""
    full, hashes = stored_rows(rows, constants)
    if not full or not hashed_all(hashes):
        return rows, items
    digests: list[str | None] = list(hashes)
    if max(key_index) < len(full[0]):  # else the key is a constant: one order is as good
        order = key_order(full, key_index)
        full, digests = [full[i] for i in order], [digests[i] for i in order]
        items = [items[i] for i in order]
    keyed = KeyedRows(full)
    keyed.digests, keyed.constants = digests, constants
    return keyed, items


def key_order(rows: Sequence[Sequence[Any]], key_index: Sequence[int]) -> list[int]:
    """The rows' positions sorted by key: the key index's B-tree is then walked in order,
    page after page, instead of at random (shuffled keys: a quarter off a first sync of
    1M rows on SQLite)."""
    if len(key_index) == 1:
        [k] = key_index
        keys = [row[k] or "" for row in rows]
        return sorted(range(len(rows)), key=keys.__getitem__)
    return sorted(range(len(rows)), key=lambda i: tuple(rows[i][k] or "" for k in key_index))


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
