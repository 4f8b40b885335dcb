"""Screening a batch before it is written: rows without a key, keys repeated in the run.

A file read in the run's thread is screened there, its duplicate check running beside
the write (``executor``). A file read ahead by a reader process (``readahead``) is
screened in that process, so the run's thread only writes; an attempt after it knows
the keys read from its own checkpoint on, as a resumed run does.

A first load into an empty target needs no index of every key: the reader screens
each batch on its own (``Screen(across=False)``), and a key repeated across batches
shows in the write's counts (a row not inserted), which the run then checks with an
index of the batches read so far, read again (``index_again``), and keeps from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from syncd.adapters import Batch, ItemError, Row
from syncd.engine.duplicates import DuplicateKeys, repeat_message


def drop_keyless(rows: list[Row], items: list[str], errors: list[ItemError],
                 positions: Sequence[int], names: str) -> tuple[list[Row], list[str]]:
    """Rows missing a key value become validation errors (added to ``errors``); the
    rest go on."""
    if not positions:
        return rows, items
    if len(positions) == 1:
        [p] = positions
        bad = [i for i, row in enumerate(rows) if row[p] == "" or row[p] is None]
    else:
        bad = [i for i, row in enumerate(rows)
               if any(row[p] is None or row[p] == "" for p in positions)]
    if not bad:
        return rows, items
    for i in bad:
        errors.append(ItemError("validation", "missing_key", f"no value for key {names}",
                                item=items[i] if i < len(items) else ""))
    skip = set(bad)
    keep = [i for i in range(len(rows)) if i not in skip]
    return [rows[i] for i in keep], [items[i] for i in keep]


def drop_repeated_in_batch(rows: list[Row], items: list[str], errors: list[ItemError],
                           positions: Sequence[int]) -> tuple[list[Row], list[str]]:
    """Rows repeating a key of an earlier row of the same batch become errors."""
    if not positions or not rows:  # (a key of constants only: nothing to tell apart)
        return rows, items
    if len(positions) == 1:
        [p] = positions
        keys: list[object] = [row[p] for row in rows]
    else:
        keys = [tuple([row[p] for p in positions]) for row in rows]
    if len(set(keys)) == len(keys):
        return rows, items
    first: dict[object, int] = {}
    keep: list[int] = []
    for i, key in enumerate(keys):
        if (j := first.setdefault(key, i)) == i:
            keep.append(i)
        else:
            errors.append(ItemError("validation", "duplicate_key", repeat_message(
                rows[i], positions, items[j], items[i]), item=items[i]))
    return [rows[i] for i in keep], [items[i] for i in keep]


def index_again(index: DuplicateKeys, batches: Iterable[Batch], positions: Sequence[int],
                names: str) -> None:
    """Index the keys of batches written before, read again, as a run reading them
    would have (keyless rows left out)."""
    for batch in batches:
        rows, items = drop_keyless(batch.rows, batch.items, [], positions, names)
        index.check(rows, items).found()  # waits: the index is whole before it is used


class Screen:
    """Screens a run's batches in a reader process: picklable until first used."""

    def __init__(self, positions: Sequence[int], names: str, across: bool = True) -> None:
        self.positions, self.names, self.across = list(positions), names, across
        self._index: DuplicateKeys | None = None

    def __call__(self, batch: Batch) -> None:
        """Move the batch's keyless rows and repeated keys into its errors: keys
        repeated in the run, or only in the batch unless ``across``.

        The duplicate check is waited for at once: overlapped with the preparer, its
        thread took CPU from the run's process instead (measured: 9.6 s against 9.1 s
        for 1M rows on two cores).
        """
        errors = list(batch.errors)
        rows, items = drop_keyless(batch.rows, batch.items, errors, self.positions,
                                   self.names)
        if not self.across:
            rows, items = drop_repeated_in_batch(rows, items, errors, self.positions)
            batch.rows, batch.items, batch.errors = rows, items, errors
            return
        if self._index is None:
            self._index = DuplicateKeys(self.positions)
        check = self._index.check(rows, items)
        if check.found():
            rows, items = check.drop(rows, items, errors)
        batch.rows, batch.items, batch.errors = rows, items, errors

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
