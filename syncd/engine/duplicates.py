"""Keys seen twice in one run: the second occurrence is reported, never written.

A dict of every key would cost hundreds of megabytes at a million rows, so the index
is a private on-disk SQLite database (SQLite deletes it on close) holding a 64-bit
hash of each key with the row's number in the run, and each batch's items as one
text, behind a small page cache. A batch costs one ``INSERT OR IGNORE … SELECT
FROM json_each``, run in a thread of its own while the target writes the same batch (SQLite releases
the GIL): the hot path pays for hashing the keys and nothing else. Only when some
row was ignored are the batch's hashes looked up, to name the first item.

The index lives as long as the process running the run: after a crash or pause the
resumed run detects duplicates among the rows it reads from then on only. Two
distinct keys with the same 64-bit hash (odds about 1 in 10^7 at 10^6 keys) would
be reported as a duplicate.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from syncd.adapters import ItemError, Row

#: bounded memory, whatever the number of keys (32 MiB would hold a million keys and
#: save a fifth of the index's time, but lifts a 1M-row sync's peak RSS by 24 MB)
CACHE_KIB = 8192
PAGE_BYTES = 16384
LOOKUP_CHUNK = 500


class Check:
    """The duplicate check of one batch, running beside its write."""

    def __init__(self, index: DuplicateKeys | None, start: int,
                 future: Future[tuple[int, list[int]]] | None) -> None:
        self.index, self.start, self.future = index, start, future

    @property
    def hashes(self) -> list[int]:
        return self.future.result()[1] if self.future is not None else []

    def found(self) -> bool:
        """Whether some row repeats a key (waits for the check)."""
        if self.future is None:
            return False
        added, hashes = self.future.result()
        return added != len(hashes)

    def drop(self, rows: list[Row], items: list[str], errors: list[ItemError]
             ) -> tuple[list[Row], list[str]]:
        """The rows whose key is new in the run; an error for each other one."""
        assert self.index is not None
        hashes = self.hashes
        first = self.index.first_of(hashes)
        repeated = [i for i, h in enumerate(hashes) if first[h] != self.start + i]
        earlier = self.index.items_of([first[hashes[i]] for i in repeated])
        for i in repeated:
            errors.append(ItemError("validation", "duplicate_key", self.index.message(
                rows[i], earlier[first[hashes[i]]], items[i]), item=items[i]))
        skip = set(repeated)
        keep = [i for i in range(len(rows)) if i not in skip]
        return [rows[i] for i in keep], [items[i] for i in keep]


class DuplicateKeys:
    """Remembers each key of a run, to tell which rows repeat one."""

    def __init__(self, positions: Sequence[int] = ()) -> None:
        self.positions = list(positions)
        self.count = 0  # rows indexed so far: a row's number tells it from its twin
        self._db: sqlite3.Connection | None = None
        self._worker: ThreadPoolExecutor | None = None

    def check(self, rows: list[Row], items: list[str]) -> Check:
        """Index the batch's keys in the background; ask the ``Check`` what repeats."""
        if not self.positions or not rows:
            return Check(None, self.count, None)
        start = self.count
        self.count += len(rows)
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="syncd-duplicates")
        # hashing too runs in the worker, while the main thread writes the batch
        return Check(self, start, self._worker.submit(self._index, start, rows, items))

    def _index(self, start: int, rows: list[Row], items: list[str]) -> tuple[int, list[int]]:
        if len(self.positions) == 1:
            [p] = self.positions
            hashes = [hash(row[p]) for row in rows]
        else:
            positions = self.positions
            hashes = [hash(tuple([row[p] for p in positions])) for row in rows]
        return self._insert(start, json.dumps(hashes), _joined(items)), hashes

    def _insert(self, start: int, hashes: str, items: str) -> int:
        db = self._db = self._db or _open()
        before = db.total_changes
        db.execute("BEGIN")
        db.execute("INSERT OR IGNORE INTO seen SELECT value, ? + key FROM json_each(?) "
                   "ORDER BY value, key", (start, hashes))  # sorted: fewer pages touched
        added = db.total_changes - before
        db.execute("INSERT INTO items (start, list) VALUES (?, ?)", (start, items))
        db.execute("COMMIT")
        return added

    def first_of(self, hashes: list[int]) -> dict[int, int]:
        """For each hash: the number of the row that first had it."""
        assert self._worker is not None
        return self._worker.submit(self._first_of, hashes).result()

    def _first_of(self, hashes: list[int]) -> dict[int, int]:
        assert self._db is not None
        found: dict[int, int] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            part = unique[start:start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(part))
            found.update(self._db.execute(f"SELECT h, n FROM seen WHERE h IN ({marks})", part))
        return found

    def items_of(self, numbers: list[int]) -> dict[int, str]:
        """The item of each row number (each batch's list is read and split once)."""
        assert self._worker is not None
        return self._worker.submit(self._items_of, numbers).result()

    def _items_of(self, numbers: list[int]) -> dict[int, str]:
        assert self._db is not None
        db = self._db
        lists: dict[int, list[str]] = {}  # by batch start
        found: dict[int, str] = {}
        for n in set(numbers):
            [start] = db.execute("SELECT MAX(start) FROM items WHERE start <= ?", (n,)).fetchone()
            if start not in lists:
                [text] = db.execute("SELECT list FROM items WHERE start = ?", (start,)).fetchone()
                lists[start] = _split(text)
            found[n] = lists[start][n - start]
        return found

    def rewind(self, count: int) -> None:
        """Forget the rows indexed after the first ``count`` (their batch rolled back)."""
        if self._worker is not None and count < self.count:
            self._worker.submit(self._forget, count).result()
        self.count = min(self.count, count)

    def _forget(self, count: int) -> None:
        if self._db is not None:
            self._db.execute("DELETE FROM seen WHERE n >= ?", (count,))
            self._db.execute("DELETE FROM items WHERE start >= ?", (count,))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.submit(self._close).result()
            self._worker.shutdown()
            self._worker = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def message(self, row: Row, earlier: str, item: str) -> str:
        return repeat_message(row, self.positions, earlier, item)


def repeat_message(row: Row, positions: Sequence[int], earlier: str, item: str) -> str:
    """The error of a row whose key (at ``positions``) the row ``earlier`` had first."""
    value = ", ".join(_excerpt(row[p]) for p in positions)
    return f"key {value} already seen at {earlier}; {item or 'this record'} not written"


def _open() -> sqlite3.Connection:
    db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    # 16 KiB pages: 20 % less time for a million random keys than 4 KiB ones (measured)
    db.execute(f"PRAGMA page_size = {PAGE_BYTES}")
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("CREATE TABLE seen (h INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    # a batch's items as one text: a row per batch, not per record
    db.execute("CREATE TABLE items (start INTEGER PRIMARY KEY, list TEXT NOT NULL)")
    return db


def _joined(items: list[str]) -> str:
    """A batch's items as one text: NUL-separated (ten times cheaper than JSON), or JSON
    when an item holds a NUL itself."""
    text = "\0".join(items)
    if text.count("\0") == max(len(items) - 1, 0) and not text.startswith("\1"):
        return text
    return "\1" + json.dumps(items)


def _split(text: str) -> list[str]:
    return json.loads(text[1:]) if text.startswith("\1") else text.split("\0")


def _excerpt(value: object, limit: int = 40) -> str:
    """A short, escaped rendering of a key value for messages."""
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[:limit - 2] + "…'"
