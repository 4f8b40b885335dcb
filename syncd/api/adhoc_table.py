"""What an existing table lets an ad-hoc run do: its key, and the columns it has.

Ad-hoc runs must not alter shared tables (``content_index``, configured jobs' tables):
they write to an existing table only by a key it already has and only into columns it
already has, so the SQL target finds nothing to add. The checks run before the 202.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the store creates it without a unique index; the SQL target keys it by ``external_id``
STORE_TABLE_KEYS = {"content_index": ("external_id",)}


@dataclass(frozen=True, slots=True)
class ExistingTable:
    """An existing table as an ad-hoc run sees it."""

    name: str
    columns: frozenset[str]
    keys: tuple[tuple[str, ...], ...]  # the unique keys syncd gave it, preferred first


def key_index_name(table: str, key: tuple[str, ...] | list[str]) -> str:
    """The name the SQL target gives its unique key index (``ensure_table``)."""
    return f"ux_{table}_{'_'.join(key)}"[:60]


def existing_table(db: Any, table: str) -> ExistingTable | None:
    """The table's columns and syncd-made keys, or None when there is no such table."""
    if not db.table_exists(table):
        return None
    columns = frozenset(c.name for c in db.get_columns(table))
    keys: list[tuple[str, ...]] = list(STORE_TABLE_KEYS.get(table, ()) and
                                       [STORE_TABLE_KEYS[table]])
    for index in db.get_indexes(table):
        key = tuple(index.columns)
        if index.unique and key and index.name == key_index_name(table, key) \
                and key not in keys:
            keys.append(key)
    return ExistingTable(table, columns, tuple(keys))
