"""Names of the store's tables and bookkeeping columns, without the models behind them.

The adapter contract needs only these; importing ``models`` would import peewee and its
database drivers (20 MB and 70 ms) into every plugin and reader process.
``tests/store`` checks that they match the models.
"""

from __future__ import annotations

#: columns the SQL target adds to every table it writes, after the mapped ones
BOOKKEEPING = ("content_hash", "is_available", "sync_job", "sync_scope", "source_type",
               "source_identifier", "first_seen_at", "last_synced_at")

#: syncd's own tables: no job may write into one
RESERVED_TABLES = frozenset({
    "id_map", "ingested_files", "sync_conflicts", "sync_daemons", "sync_errors",
    "sync_rate_slots", "sync_runs", "sync_schedule_ticks", "sync_table_writes",
    "syncd_schema",
    "webhook_deliveries"})
