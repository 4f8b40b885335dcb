"""PostgreSQL: a batch's new rows go in with ``COPY`` instead of ``INSERT … VALUES`` pages.

The rows, new by the batch's lookup, are copied as text into the table; if another
writer added one of their keys since, they are copied into a temporary table instead
and moved by one ``INSERT … SELECT … ON CONFLICT`` (that key is updated, as with the
``VALUES`` path). The server parses tab-separated lines instead of planning a
thousand-row statement per page: the server's share of a first sync drops by most of
itself. Small batches keep the ``VALUES`` path, which needs no temporary table.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from typing import Any

COPY_MIN_ROWS = 500
#: COPY's text format: a backslash, tab, newline or carriage return in a value is escaped
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_insert(cursor: Any, table: str, columns: str, on_conflict: str,
                rows: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> None:
    """Insert ``rows`` (values for ``columns``, quoted names, each followed by ``shared``)
    into ``table`` (quoted), resolving a key that exists with ``on_conflict``."""
    from psycopg2.errors import UniqueViolation

    text = copy_text(rows, shared)
    # the rows are new (the lookup said so): straight into the table, a third less of
    # the server's time than through the temporary table; a key another writer added
    # since the lookup rolls this back and takes the temporary table's path
    cursor.execute("SAVEPOINT syncd_copy")
    try:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO(text))
    except UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT syncd_copy")
        if not on_conflict:  # the caller believed every key new, and wants to know
            raise
    else:
        cursor.execute("RELEASE SAVEPOINT syncd_copy")
        return
    staging = "syncd_copy_" + hashlib.blake2b(table.encode(), digest_size=6).hexdigest()
    # only the written columns, without defaults: the target's id sequence is not touched;
    # dropped at commit, so a rolled-back or committed batch leaves nothing behind
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DROP AS "
                   f"SELECT {columns} FROM {table} WITH NO DATA")
    cursor.copy_expert(f"COPY {staging} ({columns}) FROM STDIN", io.StringIO(text))
    cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
                   f"{on_conflict}")
    cursor.execute(f"TRUNCATE {staging}")


def copy_text(rows: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> str:
    """The rows, each followed by ``shared``, in COPY's text format.

    Built without escaping, then checked once: only a batch where some value holds a
    backslash, tab, newline or carriage return is built again value by value (escaping
    every value cost 4/5 of a first sync's Python time on PostgreSQL). The values every
    row shares (bookkeeping, timestamps) are rendered once and appended to each line.
    """
    if shared:
        suffix = "\t" + copy_text([shared])[:-1]
        body = copy_text(rows)
        return body.replace("\n", suffix + "\n")  # checked: a newline ends each row
    known: dict[tuple[type, Any], str] = {}  # a batch's timestamps are all one moment

    def other(value: Any) -> str:
        key = (value.__class__, value)
        found = known.get(key)
        if found is None:
            found = known[key] = _plain(value)
        return found

    try:  # all text, as from a CSV file: joined without a Python loop
        text = "\n".join(map("\t".join, rows)) + "\n" if rows else ""
        nulls = 0
    except TypeError:
        text = "".join(["\t".join([v if v.__class__ is str else other(v) for v in row])
                        + "\n" for row in rows])
        nulls = sum(row.count(None) for row in rows)  # each one is a "\N"
    width = len(rows[0]) if rows else 0
    if (text.count("\t") == len(rows) * (width - 1) and text.count("\n") == len(rows)
            and text.count("\\") == nulls and "\r" not in text):
        return text
    return "".join(["\t".join([_field(v) for v in row]) + "\n" for row in rows])


def _plain(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    return (value if isinstance(value, str) else str(value)).translate(_ESCAPES)
