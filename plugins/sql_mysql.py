"""MySQL/MariaDB: a batch's new rows as multi-row ``INSERT`` statements, built at once.

pymysql's ``executemany`` escapes value by value in Python: three fifths of a first
sync's time on MariaDB, most of it formatting the same timestamp again and again.
Here the batch's text values are joined and escaped by one call (only when one of
them needs it), every other value is escaped once per distinct value, and the rows go
in statements of up to about 1 MB, as pymysql sends them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SEPARATOR = "\x01"  # joins the batch's texts; never changed by escaping
ROW_SEPARATOR = "\x02"  # and its rows, where every value is text
MAX_STATEMENT = 1_000_000  # characters, as pymysql's ``max_stmt_length``
#: what pymysql's escaping changes (a quote alone where NO_BACKSLASH_ESCAPES is set)
_NEEDS_ESCAPE = re.compile("[\\\\'\"\0\n\r\x1a]")


def values_insert(cursor: Any, table: str, columns: str, on_conflict: str,
                  rows: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> bool:
    """Insert ``rows``, each followed by ``shared``; False (nothing sent) if a value
    holds the separator."""
    texts = row_texts(cursor.connection, rows, shared)
    if texts is None:
        return False
    head, tail = f"INSERT INTO {table} ({columns}) VALUES ", f" {on_conflict}"
    chunk: list[str] = []
    size = 0
    for text in texts:
        if chunk and size + len(text) > MAX_STATEMENT:
            cursor.execute(head + ",".join(chunk) + tail)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        cursor.execute(head + ",".join(chunk) + tail)
    return True


def row_texts(connection: Any, rows: Sequence[tuple[Any, ...]],
              shared: tuple[Any, ...] = ()) -> list[str] | None:
    """Each row, followed by ``shared``, as ``(v1,v2,…)``, escaped as the connection
    would escape each value (the shared values once for all rows)."""
    suffix = ")"
    if shared:
        texts = row_texts(connection, [shared])
        if texts is None:
            return None
        suffix = "," + texts[0][1:]
    try:  # all text, as from a CSV file: joined and split without a loop over values
        joined = ROW_SEPARATOR.join(map(SEPARATOR.join, rows))
    except TypeError:
        pass
    else:
        width = len(rows[0]) if rows else 0
        if (joined.count(SEPARATOR) == len(rows) * (width - 1)
                and joined.count(ROW_SEPARATOR) == max(len(rows) - 1, 0) and width):
            if _NEEDS_ESCAPE.search(joined):
                joined = connection.escape(joined)[1:-1]
            return ["('" + text.replace(SEPARATOR, "','") + "'" + suffix
                    for text in joined.split(ROW_SEPARATOR)]
    strings = [v for row in rows for v in row if v.__class__ is str]
    joined = SEPARATOR.join(strings)
    if joined.count(SEPARATOR) != max(len(strings) - 1, 0):
        return None
    if _NEEDS_ESCAPE.search(joined):
        joined = connection.escape(joined)[1:-1]  # quoted: 'text'
    escaped = iter(joined.split(SEPARATOR))
    others: dict[tuple[type, Any], str] = {}  # True == 1, so keyed by type as well
    out = []
    for row in rows:
        parts = []
        for value in row:
            if value.__class__ is str:
                parts.append("'" + next(escaped) + "'")
            elif value is None:
                parts.append("NULL")
            else:
                found = others.get((value.__class__, value))
                if found is None:
                    found = others[(value.__class__, value)] = connection.escape(value)
                parts.append(found)
        out.append("(" + ",".join(parts) + suffix)
    return out
