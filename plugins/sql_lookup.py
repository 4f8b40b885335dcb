"""The SQL target's lookup: the stored content hash of each of a batch's keys.

Split from :mod:`sql_target` (the writes). A single text key is looked up by one
statement per batch where the dialect has one (``lookup_all``), in key order, as
batches are written; other keys by ``IN (…)`` lists of ``lookup_chunk`` keys.
"""

from __future__ import annotations

from typing import Any

from syncd.adapters import SqlSession

from .sql_dialect import STORED_HASH, Dialect


def stored_hashes(sql: SqlSession, dialect: Dialect, table: str, key_columns: str,
                  width: int, lookup_all: str | None, keys: list[Any]) -> dict[Any, str]:
    """Stored content hash of each key that exists in ``table`` (quoted); ``""`` if the
    row is marked unavailable. Keys are tuples when ``width`` > 1."""
    cursor = sql.cursor()
    if width == 1 and lookup_all:
        try:
            unique = sorted(set(keys))
        except TypeError:  # a NULL among text keys
            unique = sorted(set(keys), key=lambda k: k or "")
        cursor.execute(lookup_all, (dialect.lookup_param(unique),))
        return dict(cursor.fetchall())
    found: dict[Any, str] = {}
    unique = list(dict.fromkeys(keys))
    p = sql.param
    for start in range(0, len(unique), dialect.lookup_chunk):
        part = unique[start:start + dialect.lookup_chunk]
        inline = dialect.inline_keys(cursor, part, width)
        params: list[Any] | None = None
        if inline is not None:
            where = f"({key_columns}) IN ({inline})"
        elif width == 1:
            where = f"{key_columns} IN ({', '.join([p] * len(part))})"
            params = part
        else:
            group = "(" + ", ".join([p] * width) + ")"
            where = f"({key_columns}) IN {dialect.key_rows(', '.join([group] * len(part)))}"
            params = [v for key in part for v in key]
        cursor.execute(f"SELECT {key_columns}, {STORED_HASH} FROM {table} WHERE {where}",
                       params)
        for row in cursor.fetchall():
            found[row[0] if width == 1 else tuple(row[:width])] = row[width]
    return found
