"""After a full sync: the SQL target's rows whose key the source no longer has.

Split from :mod:`sql_target` (the writes): the keys seen in the run go into a
temporary table, and one statement marks (or deletes) the job's rows not among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from syncd.adapters import Row, RunContext, SqlSession, TargetSchema

from .sql_dialect import Dialect
from .sql_values import as_text


def reconcile_table(sql: SqlSession, dialect: Dialect, table_name: str, key: tuple[str, ...],
                    schema: TargetSchema, ctx: RunContext, seen_keys: Iterator[Row],
                    on_missing: str) -> int:
    """Mark unavailable or delete (``on_missing``) this job's rows not in ``seen_keys``;
    count them only on a dry run."""
    q, p = sql.quote, sql.param
    key_columns = ", ".join(q(k) for k in key)
    seen = f"syncd_seen_{ctx.run_id}"
    key_types = ", ".join(f"{q(k)} VARCHAR(191)" for k in key)
    cursor = sql.cursor()
    cursor.execute(f"DROP TABLE IF EXISTS {q(seen)}")
    cursor.execute(f"CREATE TEMPORARY TABLE {q(seen)} ({key_types})")
    insert = (f"INSERT INTO {q(seen)} ({key_columns}) "
              f"VALUES ({', '.join(p for _ in key)})")
    while chunk := list(islice(seen_keys, 10_000)):
        try:
            "".join(chain.from_iterable(chunk))
        except TypeError:  # a plugin's int keys: compared as the table stores them
            chunk = [tuple([as_text(v) for v in values]) for values in chunk]
        cursor.executemany(insert, chunk)
    cursor.execute(f"CREATE INDEX {q(seen + '_key')} ON {q(seen)} ({key_columns})")
    table = q(table_name)
    matches = " AND ".join(f"s.{q(k)} = {table}.{q(k)}" for k in key)
    where = (f"{table}.sync_job = {p} AND NOT EXISTS "
             f"(SELECT 1 FROM {q(seen)} s WHERE {matches})")
    params: list[Any] = [schema.job]
    if schema.scope is not None:  # e.g. one drive: others' records stay as they are
        where += f" AND {table}.sync_scope = {p}"
        params.append(schema.scope)
    if on_missing == "mark_unavailable":
        where += f" AND {table}.is_available = {p}"
        params.append(True)
    if ctx.dry_run:
        cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
        count = cursor.fetchone()[0]
    elif on_missing == "delete":
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)
        count = cursor.rowcount
    else:
        now = dialect.timestamp(sql.now())
        cursor.execute(f"UPDATE {table} SET is_available = {p}, last_synced_at = {p} "
                       f"WHERE {where}", [False, now, *params])
        count = cursor.rowcount
    cursor.execute(f"DROP TABLE {q(seen)}")
    return count
