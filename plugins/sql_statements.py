"""The SQL target's statements for one table, written once when the target opens.

Split from :mod:`sql_target` (which runs them): the column lists, the upserts with
their conflict clause, the update by key and the batch lookup of stored hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.adapters import BOOKKEEPING, SqlSession

from .sql_dialect import Dialect, Insert


@dataclass(frozen=True, slots=True)
class Statements:
    insert: Insert  # upsert: a stored key is updated
    insert_new: Insert  # keys believed new: a stored key fails the batch instead
    upsert_where: str  # SQLite: leave identical rows alone (PERF-NOTES' fast path)
    upsert_sql: str
    update_sql: str  # by key, the columns a write refreshes
    update_positions: list[int]  # where those columns are in a written row
    key_columns: str
    lookup_all: str | None  # one statement for a batch's keys, where the dialect has one


def statements(sql: SqlSession, dialect: Dialect, table_name: str, fields: Sequence[str],
               key: Sequence[str]) -> Statements:
    q, p = sql.quote, sql.param
    written = (*fields, *BOOKKEEPING)
    columns = ", ".join(q(c) for c in written)
    values = ", ".join(p for _ in written)
    refreshed = [c for c in written if c not in key and c != "first_seen_at"]
    on_conflict = dialect.on_conflict(q, tuple(key), refreshed)
    table = q(table_name)
    insert = Insert(table, columns, on_conflict,
                    f"INSERT INTO {table} ({columns}) VALUES ({values}) {on_conflict}")
    upsert_where = (f"WHERE {table}.content_hash IS NOT excluded.content_hash "
                    f"OR NOT {table}.is_available")
    key_columns = ", ".join(q(k) for k in key)
    return Statements(
        insert=insert,
        insert_new=Insert(table, columns, "", f"INSERT INTO {table} ({columns}) VALUES ({values})"),
        upsert_where=upsert_where,
        upsert_sql=f"{insert.sql} {upsert_where}",
        update_sql=(f"UPDATE {table} SET " + ", ".join(f"{q(c)} = {p}" for c in refreshed)
                    + " WHERE " + " AND ".join(f"{q(k)} = {p}" for k in key)),
        update_positions=[written.index(c) for c in refreshed],
        key_columns=key_columns,
        lookup_all=(dialect.lookup_all(table, key_columns)
                    if len(key) == 1 and dialect.text_key(sql, table, key[0]) else None))
