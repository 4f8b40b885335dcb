"""The table and column names the adapter contract knows without the models match them."""

from __future__ import annotations

from syncd.store.models import MODELS, ContentIndex
from syncd.store.names import BOOKKEEPING, RESERVED_TABLES


def test_reserved_tables_are_every_table_of_syncd_but_the_shared_one() -> None:
    assert {m._meta.table_name for m in MODELS} - {"content_index"} == RESERVED_TABLES


def test_bookkeeping_columns_are_content_index_columns() -> None:
    assert set(BOOKKEEPING) <= set(ContentIndex._meta.fields)
