"""The whole-record key: one digest column instead of a key over every column."""

from __future__ import annotations

from pathlib import Path

from syncd.engine.recordkey import RECORD_FIELD, record_digest, with_record_key
from syncd_builtin.csv_source import CsvSource


def test_the_digest_tells_where_one_value_ends() -> None:
    assert record_digest(["a,b", "c"]) != record_digest(["a", "b,c"])
    assert record_digest(["a", None]) != record_digest(["a", ""])
    assert record_digest(["x", "y"]) == record_digest(("x", "y"))


def test_a_source_without_the_pseudo_field_is_left_as_it_is(tmp_path: Path) -> None:
    source = CsvSource(CsvSource.Options(), str(tmp_path / "a.csv"))
    assert with_record_key(source, ["a", "b"]) is source


def test_the_digest_covers_the_record_even_when_only_the_key_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pricing.csv"
    path.write_text("category,gb,price\nmusic,8,1\nmusic,32,2\nmusic,8,1\n")
    fields = ["category", RECORD_FIELD, "price"]  # the plan's fields, in mapping order
    source = with_record_key(CsvSource(CsvSource.Options(), str(path)), fields)
    assert source.identifier == str(path) and source.header() == ["category", "gb", "price"]
    rows = [row for batch in source.read(fields, None, 10) for row in batch.rows]
    assert [(r[0], r[2]) for r in rows] == [("music", "1"), ("music", "2"), ("music", "1")]
    assert rows[0][1] == record_digest(["music", "1"])  # the mapped fields, not ``gb``
    # reconcile reads the key alone: the digest is the same as when the rows were written
    keys = [row for batch in source.read([RECORD_FIELD], None, 10) for row in batch.rows]
    assert keys == [(r[1],) for r in rows]
