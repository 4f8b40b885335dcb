"""The duplicate-key index: which rows repeat a key, and the earlier row each names."""

from __future__ import annotations

import pytest

from syncd.adapters import ItemError
from syncd.engine import duplicates
from syncd.engine.duplicates import DuplicateKeys


def batch(start: int, count: int) -> tuple[list[tuple[str, str]], list[str]]:
    rows = [(str(i), f"title {i}") for i in range(start, start + count)]
    return rows, [f"line {i + 2}" for i in range(start, start + count)]


def test_repeats_in_and_across_batches_name_the_first_row() -> None:
    index = DuplicateKeys([0])
    try:
        first_rows, first_items = batch(0, 5)
        assert not index.check(first_rows, first_items).found()
        rows = [("7", "a"), ("3", "b"), ("7", "c"), ("8", "d")]
        items = ["line 20", "line 21", "line 22", "line 23"]
        check = index.check(rows, items)
        assert check.found()
        errors: list[ItemError] = []
        kept, kept_items = check.drop(rows, items, errors)
    finally:
        index.close()
    assert kept == [("7", "a"), ("8", "d")] and kept_items == ["line 20", "line 23"]
    assert [(e.item, e.message) for e in errors] == [
        ("line 21", "key '3' already seen at line 5; line 21 not written"),
        ("line 22", "key '7' already seen at line 20; line 22 not written")]


def test_naming_the_first_rows_reads_each_batch_list_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large batch whose every row repeats a key of two earlier batches: each batch's
    list of items is split once, not once per repeated row (that took ten seconds a
    batch at 20,000 rows)."""
    splits: list[int] = []
    split = duplicates._split

    def counted(text: str) -> list[str]:
        splits.append(len(text))
        return split(text)

    monkeypatch.setattr(duplicates, "_split", counted)
    index = DuplicateKeys([0])
    try:
        for start in (0, 10_000):
            assert not index.check(*batch(start, 10_000)).found()
        rows, items = batch(0, 20_000)
        items = [f"again {i}" for i in range(20_000)]
        check = index.check(rows, items)
        assert check.found()
        errors: list[ItemError] = []
        kept, _ = check.drop(rows, items, errors)
    finally:
        index.close()
    assert kept == [] and len(errors) == 20_000
    assert errors[-1].message == "key '19999' already seen at line 20001; again 19999 not written"
    assert len(splits) == 2
