"""Keys seen twice in one run: the second occurrence is reported, never written.

A dict of every key would cost hundreds of megabytes at a million rows, so the index
is a private on-disk SQLite database (SQLite deletes it on close) holding a 64-bit
hash of each key, the row's number in the run and its item, behind a small page
cache. A batch costs one ``INSERT OR IGNORE``; only when some row was ignored are
the batch's hashes looked up to name the first item.

The index lives as long as the process running the run: after a crash or pause the
resumed run detects duplicates among the rows it reads from then on only. Two
distinct keys with the same 64-bit hash (odds about 1 in 10^7 at 10^6 keys) would
be reported as a duplicate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from syncd.adapters import ItemError, Row

CACHE_KIB = 4096  # bounded memory, whatever the number of keys
LOOKUP_CHUNK = 500


class DuplicateKeys:
    """Remembers each key of a run; drops and reports rows whose key came before."""

    def __init__(self, positions: Sequence[int] = ()) -> None:
        self.positions = list(positions)
        self._db: sqlite3.Connection | None = None
        self._count = 0  # rows indexed so far: each row's number tells it from its twin

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE seen (h INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
                   "item TEXT NOT NULL)")
        return db

    @property
    def count(self) -> int:
        return self._count

    def rewind(self, count: int) -> None:
        """Forget the keys indexed after the first ``count`` (a batch that rolled back)."""
        if self._db is not None and count < self._count:
            self._db.execute("DELETE FROM seen WHERE n >= ?", (count,))
        self._count = count

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def filter(self, rows: list[Row], items: list[str], errors: list[ItemError]
               ) -> tuple[list[Row], list[str]]:
        """The rows whose key is new in this run; an error for each other one."""
        if not self.positions or not rows:
            return rows, items
        db = self._db = self._db or self._open()
        if len(self.positions) == 1:
            [p] = self.positions
            hashes = [hash(row[p]) for row in rows]
        else:
            positions = self.positions
            hashes = [hash(tuple([row[p] for p in positions])) for row in rows]
        start = self._count
        self._count += len(rows)
        before = db.total_changes
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                       zip(hashes, range(start, self._count), items, strict=True))
        db.execute("COMMIT")
        if db.total_changes - before == len(rows):
            return rows, items
        first = self._first_items(db, hashes)
        keep: list[int] = []
        for i, (h, item) in enumerate(zip(hashes, items, strict=True)):
            number, earlier = first[h]
            if number == start + i:
                keep.append(i)
            else:
                errors.append(ItemError("validation", "duplicate_key", self._message(
                    rows[i], earlier, item), item=item))
        return [rows[i] for i in keep], [items[i] for i in keep]

    @staticmethod
    def _first_items(db: sqlite3.Connection, hashes: list[int]
                     ) -> dict[int, tuple[int, str]]:
        found: dict[int, tuple[int, str]] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            part = unique[start:start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(part))
            for h, number, item in db.execute(
                    f"SELECT h, n, item FROM seen WHERE h IN ({marks})", part):
                found[h] = (number, item)
        return found

    def _message(self, row: Row, earlier: str, item: str) -> str:
        value = ", ".join(_excerpt(row[p]) for p in self.positions)
        return f"key {value} already seen at {earlier}; {item or 'this record'} not written"


def _excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped rendering of a key value for messages."""
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[:limit - 2] + "…'"
