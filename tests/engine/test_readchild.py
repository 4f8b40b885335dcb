"""The reader process's wire format: a batch of text rows packed as joined columns comes
back whole, and anything else is left to pickle."""

from __future__ import annotations

import pickle

import pytest

from syncd.adapters import Batch, ItemError
from syncd.readchild import pack, unpack
from syncd_builtin.sql_values import KeyedRows, keyed_rows


def _round_trip(batch: Batch) -> tuple[Batch, bool]:
    packed = pack(batch)
    sent = pickle.loads(pickle.dumps((batch, packed)))
    return (unpack(*sent) if packed is not None else sent[0]), packed is not None


def _batch(rows: list, items: list[str] | None = None) -> Batch:
    return Batch(rows, items if items is not None else [f"line {i}" for i in range(len(rows))],
                 {"offset": 9, "line": 3}, [ItemError("parsing", "csv", "bad", "line 7")],
                 skipped=1, progress=9)


def test_text_rows_travel_as_columns_and_come_back_whole() -> None:
    rows = [("1", "été 🎵", ""), ("2", "two\nlines", "a,b"), ("3", "\udcff surrogate", "z")]
    batch, packed = _round_trip(_batch(rows))
    assert packed
    assert batch.rows == rows and all(type(r) is tuple for r in batch.rows)
    assert batch.items == ["line 0", "line 1", "line 2"]
    assert batch.checkpoint == {"offset": 9, "line": 3} and batch.skipped == 1
    assert batch.errors == [ItemError("parsing", "csv", "bad", "line 7")]


@pytest.mark.parametrize("rows", [
    [("1", "a\x1fb")],  # the separator itself
    [("1", None)],  # not text
    [("1", 2)],
    [("1", "a"), ("2",)],  # two widths
    [["1", "a"]],  # not tuples
    [()],  # no values
    [],
], ids=["separator", "none", "int", "widths", "lists", "empty-rows", "no-rows"])
def test_what_columns_cannot_carry_is_pickled_as_it_is(rows: list) -> None:
    batch, packed = _round_trip(_batch(rows))
    assert not packed
    assert batch.rows == rows


def test_an_item_holding_the_separator_is_pickled() -> None:
    batch, packed = _round_trip(_batch([("1", "a")], ["line\x1f1"]))
    assert not packed and batch.items == ["line\x1f1"]


def test_prepared_rows_keep_their_class_order_and_digests() -> None:
    rows = [("3", "c"), ("1", "a"), ("2", "b")]
    prepared, items = keyed_rows(("music",), (0,), rows, ["l3", "l1", "l2"])
    batch, packed = _round_trip(_batch(prepared, items))
    assert packed
    assert isinstance(batch.rows, KeyedRows)
    assert batch.rows == [("1", "a"), ("2", "b"), ("3", "c")]
    assert batch.items == ["l1", "l2", "l3"]
    assert batch.rows.digests == prepared.digests and batch.rows.constants == ("music",)


def test_rows_with_a_nul_byte_are_left_unprepared() -> None:
    rows = [("2", "b\x00"), ("1", "a")]
    prepared, items = keyed_rows((), (0,), rows, ["l2", "l1"])
    assert type(prepared) is list and prepared == rows and items == ["l2", "l1"]
