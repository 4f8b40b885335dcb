"""The duplicate-key index: which rows repeat a key, and the earlier row each names."""

from __future__ import annotations

import pytest

from syncd.adapters import ItemError, Row
from syncd.engine import duplicates
from syncd.engine.duplicates import DuplicateKeys

Batch = tuple[list[Row], list[str]]


def batch(start: int, count: int) -> Batch:
    rows: list[Row] = [(str(i), f"title {i}") for i in range(start, start + count)]
    return rows, [f"line {i + 2}" for i in range(start, start + count)]


def screened(earlier: list[Batch], rows: list[Row], items: list[str]
             ) -> tuple[list[Row], list[str], list[ItemError]]:
    """Index the ``earlier`` batches (none repeats a key), then screen this one."""
    index = DuplicateKeys([0])
    errors: list[ItemError] = []
    try:
        for before in earlier:
            assert not index.check(*before).found()
        check = index.check(rows, items)
        assert check.found()
        kept, kept_items = check.drop(rows, items, errors)
    finally:
        index.close()
    return kept, kept_items, errors


def test_repeats_in_and_across_batches_name_the_first_row() -> None:
    kept, kept_items, errors = screened(
        [batch(0, 5)], [("7", "a"), ("3", "b"), ("7", "c"), ("8", "d")],
        ["line 20", "line 21", "line 22", "line 23"])
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
    rows, _ = batch(0, 20_000)
    kept, _, errors = screened([batch(0, 10_000), batch(10_000, 10_000)], rows,
                               [f"again {i}" for i in range(20_000)])
    assert kept == [] and len(errors) == 20_000
    assert errors[-1].message == "key '19999' already seen at line 20001; again 19999 not written"
    assert len(splits) == 2
