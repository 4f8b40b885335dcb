"""``syncd check`` for the SQL target: the database answers and the table is usable.

Touches no data: an existing table is only looked at; a missing one is created inside
a transaction that is rolled back (SQLite and PostgreSQL roll DDL back), so a missing
permission shows now rather than at the first run. MySQL/MariaDB commit DDL at once,
so there the table is not tried, only reported as created by the first run.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.adapters import SqlSession

from .sql_table import ensure_table  # the same DDL a run would issue


class _RolledBack(Exception):
    """Raised inside the probe's transaction so that it rolls back."""


def check_table(sql: SqlSession, table: str, fields: Sequence[str],
                key: Sequence[str]) -> str:
    sql.execute("SELECT 1").fetchone()
    where = f"the {sql.dialect} database answers"
    if sql.table_exists(table):
        present = sql.columns(table)
        missing = [f for f in fields if f not in present]
        added = f"; the next run adds column(s) {', '.join(missing)}" if missing else ""
        return f"{where}; table {table} exists ({len(present)} columns){added}"
    if sql.dialect == "mysql":
        return f"{where}; table {table} does not exist yet: the first run creates it"
    try:
        with sql.savepoint():
            ensure_table(sql, table, fields, key)
            raise _RolledBack
    except _RolledBack:
        pass
    return f"{where}; table {table} does not exist yet and can be created (tried, rolled back)"
