"""The SQL target's table: created from the job's mapping, grown when the mapping grows."""

from __future__ import annotations

from collections.abc import Sequence

from syncd.adapters import SqlSession

from .sql_dialect import DIALECTS


def ensure_table(sql: SqlSession, table: str, fields: Sequence[str],
                 key: Sequence[str]) -> None:
    """Create the table, add columns the mapping gained, and the unique key index."""
    dialect, quote = DIALECTS[sql.dialect], sql.quote
    present = sql.columns(table) if sql.table_exists(table) else set()
    text, short, stamp, boolean = "TEXT", dialect.key_type, dialect.timestamp_type, "BOOLEAN"
    types = {"content_hash": "VARCHAR(64)", "is_available": f"{boolean} DEFAULT TRUE",
             "sync_job": short, "sync_scope": short, "source_type": short,
             "source_identifier": text,
             "first_seen_at": stamp, "last_synced_at": stamp}
    if not present:
        columns = [f"{quote('id')} {dialect.serial}"]
        columns += [f"{quote(f)} {short if f in key else text}" for f in fields]
        columns += [f"{quote(c)} {t}" for c, t in types.items()]
        sql.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(columns)})")
    else:
        for name in [*fields, *types]:
            if name not in present:
                kind = types.get(name, short if name in key else text)
                sql.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}")
    index = f"ux_{table}_{'_'.join(key)}"[:60]
    if index not in sql.indexes(table):
        sql.execute(f"CREATE UNIQUE INDEX {quote(index)} ON {quote(table)} "
                       f"({', '.join(quote(k) for k in key)})")
