"""MySQL/MariaDB: a batch of new rows through ``LOAD DATA LOCAL INFILE``.

The server splits tab-separated lines instead of parsing a multi-row ``INSERT``'s
literals: the inserts of a first sync take well under half the time. With ``LOCAL``
the server turns a duplicate key or a bad value into a warning and goes on, so any
warning, or fewer rows loaded than sent, rolls the load back to its savepoint and the
batch takes the ``INSERT`` path, whose errors are exact. The file holds only the batch,
is private to the daemon and deleted at once; the store's connection sends no other
file (``SqlSession.local_file``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from syncd.adapters import SqlSession

from .sql_copy import copy_text

LOAD_MIN_ROWS = 500  # fewer rows: one INSERT costs less than a file
CLIENT_ERRORS = range(2000, 3000)  # the driver's own codes: a lost or broken connection
#: tab, backslash and newline as hex literals: read alike with NO_BACKSLASH_ESCAPES
LOAD = ("LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' ({columns})")


def load_insert(sql: SqlSession, cursor: Any, table: str, columns: str,
                rows: Sequence[tuple[Any, ...]], shared: tuple[Any, ...] = ()) -> bool:
    """Load ``rows`` (values for ``columns``, each followed by ``shared``) into ``table``;
    False, with nothing written, where the server cannot, refuses or warns."""
    connection = cursor.connection
    if len(rows) < LOAD_MIN_ROWS or getattr(connection, "_syncd_no_load", False):
        return False
    text = copy_text(rows, tuple(_plain(v) for v in shared))
    try:
        batch = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the with below
            "w", encoding="utf-8", prefix="syncd-load-", suffix=".tsv")
    except OSError:  # no room, or no writable temporary folder: the INSERTs need none
        return False
    with batch:
        try:
            batch.write(text)
            batch.flush()
        except OSError:
            return False
        with sql.local_file(batch.name) as allowed:
            if not allowed:
                return False
            cursor.execute("SAVEPOINT syncd_load")
            try:
                loaded = cursor.execute(LOAD.format(table=table, columns=columns),
                                        (batch.name,))
            except Exception as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
                if CLIENT_ERRORS.start <= code < CLIENT_ERRORS.stop:
                    raise  # the connection, not the statement: the run retries
                # refused (local_infile = OFF, a MySQL that never allows it) or unknown
                # to this server: this connection stays with INSERT
                connection._syncd_no_load = True
                cursor.execute("ROLLBACK TO SAVEPOINT syncd_load")
                return False
    if loaded != len(rows) or getattr(cursor, "warning_count", 1):
        cursor.execute("ROLLBACK TO SAVEPOINT syncd_load")
        return False
    cursor.execute("RELEASE SAVEPOINT syncd_load")
    return True


def _plain(value: Any) -> Any:
    """A shared value as ``LOAD DATA`` reads it into the column ``INSERT`` would fill."""
    if value is True or value is False:
        return int(value)
    if isinstance(value, datetime):  # DATETIME keeps whole seconds: no truncation note
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value
