"""Reading only the lines that changed since the job's last run.

A run into a target its job's last completed run left as it is (the same revision,
``unchanged``) compares each line's digest with the same line's in that run's
snapshot (``line_snapshot``) and parses only the lines that differ, the lines past
the old end, and the lines that wrote nothing last time (blank, refused, a repeated
key: their errors are reported again). The others are counted unchanged unread: the
same bytes, read the same way (``LineDigests.layout``) by the same job, give the same
record, and the target holds it.

One thing a changed line can do that reading it alone would miss: repeat the key of
an unchanged line, which a full read reports as a duplicate on whichever comes
second. Before writing, the run therefore reads the changed lines' keys once and
looks them up among the unchanged lines' key digests; the lines it finds are read
too, and the run's duplicate check tells which comes first. A run where more than a
quarter of the lines changed (lines added or removed in the middle shift all after
them) reads the file whole, and so does a job with ``on_missing`` other than ``keep``
(which needs every key of the file).
"""

from __future__ import annotations

import contextlib
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.adapters import Batch, LineDigests, Row, Source, WriteResult
from syncd.engine.line_snapshot import (
    BLOCK,
    KeyBlocks,
    Snapshot,
    SnapshotWriter,
    Torn,
    good_rows,
    key_digests,
    line_numbers,
)
from syncd.engine.screening import drop_keyless

if TYPE_CHECKING:
    from syncd.engine.targets import Writer
    from syncd.store import Store

MAX_SHARE = 4  # more than 1/MAX_SHARE of the lines changed: read the file whole
MAX_LINES = 500_000  # more changed lines than this: read whole (positions are in memory)
KEEP_LINES = 50_000  # changed lines whose batches are kept from reading their keys
MAX_REPEATED = 1000  # unchanged lines whose key a changed line repeats, read too


class LinePlan:
    """What a run does with its file's lines: reads the ``wanted`` ones (None: all),
    and records the key each line wrote, for the snapshot it leaves."""

    def __init__(self, writer: SnapshotWriter, first_line: int, positions: Sequence[int],
                 wanted: list[int] | None = None, old: Snapshot | None = None,
                 batches: list[Batch] | None = None, lines: LineDigests | None = None
                 ) -> None:
        self.writer, self.first_line, self.positions = writer, first_line, list(positions)
        self.wanted, self.old = wanted, old
        self.batches = batches  # the wanted lines' batches, read already (when few)
        self.lines = lines  # digests still to write (a full read: here or by its reader)
        self.by_reader = False  # the reader process sends the lines' digests
        self.blocks = KeyBlocks(first_line, positions)
        self.next = 0  # (a full read) key digests written so far
        self.patches: dict[int, int] = {}  # (a changed-lines read) position: key digest
        self.broken = False  # a row whose line was not told: leave no snapshot

    def record(self, rows: Sequence[Row], items: Sequence[str], result: WriteResult,
               block: tuple[int, array] | None = None) -> None:
        """Note the key digest of each row the write took, by its line: from ``block``
        when a reader process made it (before it put the rows in key order)."""
        if self.broken or not rows:
            return
        good, good_items = good_rows(rows, items, result)
        if not good:  # (its lines stay 0: read again next time)
            return
        if self.wanted is not None:  # a few lines here and there
            lines = line_numbers(good_items)
            if lines is None or len(lines) != len(good):
                self.broken = True
                return
            first = self.first_line
            self.patches.update(zip([n - first for n in lines],
                                    key_digests(good, self.positions), strict=True))
            return
        if block is None:
            block = self.blocks(good, good_items)
        elif len(block[1]) - block[1].count(0) != len(good):  # (rare) rows not written
            kept, base = set(good_items), self.first_line + block[0]
            for i in range(len(block[1])):
                if f"line {base + i}" not in kept:
                    block[1][i] = 0
        if block is None or block[0] < self.next:
            self.broken = True
            return
        start, digests = block
        if start > self.next:
            for zeros in _zeros(start - self.next):
                self.writer.key_block(zeros)
        self.writer.key_block(digests)
        self.next = start + len(digests)

    def take_lines(self) -> bool:
        """Write the lines' digests now, unless they were (False: the file has none)."""
        if self.lines is None:
            return True
        lines, self.lines = self.lines, None
        return all(self.line_block(block) for block in lines.blocks)

    def line_block(self, block: array | None) -> bool:
        """Write a block of the lines' digests (None: the file has none)."""
        if block is None:
            self.broken = True
            return False
        self.writer.line_block(block)
        return True

    def from_reader(self, block: array | None) -> None:
        """A block of the lines' digests from the reader process (written unless they
        were already)."""
        if block is None or self.by_reader:
            self.line_block(block)

    def keep(self, run_id: int) -> str | None:
        """Leave the snapshot for the next run (after this one's last commit); or say
        why not."""
        if self.broken:
            self.discard()
            return "a row was not told by its line"
        try:
            for block in self._key_blocks():
                self.writer.key_block(block)
            self.writer.keep(run_id)
        except (OSError, Torn) as exc:
            self.discard()
            return str(exc)
        return None

    def _key_blocks(self) -> Iterator[array]:
        """What is left to write of the key digests: zeros to the end of a full read;
        the last snapshot's, patched, for a read of changed lines."""
        count = self.writer.count
        if self.wanted is None:
            if self.next > count:
                raise Torn(f"a row on line {self.first_line + self.next - 1} of "
                           f"{count} lines")
            yield from _zeros(count - self.next)
            return
        assert self.old is not None
        wanted, patches, base = self.wanted, self.patches, 0
        for block in _fixed(self.old.blocks("keys"), count):
            i = bisect_left(wanted, base)
            while i < len(wanted) and wanted[i] < base + len(block):
                block[wanted[i] - base] = patches.get(wanted[i], 0)
                i += 1
            yield block
            base += len(block)

    def read(self, source: Source, fields: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        """The wanted lines' batches."""
        assert self.wanted is not None
        if self.batches is None:
            return source.read_lines(fields, self.wanted, batch_rows)
        batches, self.batches = self.batches, None
        return iter(batches)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.discard()


def plan(store: Store, job: str, source: Any, target: Writer, state_dir: Path | None,
         digest: str | None, config: str | None, positions: Sequence[int],
         on_missing: str, fields: Sequence[str], batch_rows: int) -> LinePlan | None:
    """The run's line plan: None when it leaves no snapshot (see the module's doc)."""
    if digest is None or config is None or state_dir is None or not positions \
            or on_missing != "keep" or not isinstance(source, Source):
        return None
    digests = source.line_digests()
    if digests is None:
        return None
    meta = {"config": config, "layout": digests.layout, "first_line": digests.first_line}
    writer = SnapshotWriter(state_dir, job, meta)
    try:
        old = _usable(store, job, target, state_dir, meta)
        if old is None:  # its lines are digested as it reads (maybe by its reader)
            return LinePlan(writer, digests.first_line, positions, lines=digests)
        wanted = _changed(writer, digests, old)
    except (OSError, MultiLine):
        writer.discard()
        return None
    if wanted is not None:
        read = _read_keys(source, wanted, positions, fields, batch_rows)
        repeated = _repeated(old, read.keys, wanted, writer.count)
        if repeated is not None:
            if repeated:  # (rare) read too, so the batches read are not all
                wanted, read.kept = sorted({*wanted, *repeated}), None
            return LinePlan(writer, digests.first_line, positions, wanted, old, read.kept)
    return LinePlan(writer, digests.first_line, positions)  # a full read


def carry(state_dir: Path, job: str, last: int, run_id: int) -> None:
    """A run that read nothing (the same content as ``last``) takes over its snapshot."""
    old = Snapshot.load(state_dir, job)
    if old is not None and old.meta.get("run") == last:
        with contextlib.suppress(OSError):
            old.carry(run_id)


class MultiLine(Exception):
    """A line may not be a whole record: no line digests."""


def _usable(store: Store, job: str, target: Writer, state_dir: Path,
            meta: dict[str, Any]) -> Snapshot | None:
    """The snapshot of the job's last completed run, if the target is as it left it and
    this run reads its lines as it did."""
    old = Snapshot.load(state_dir, job)
    if old is None or any(old.meta.get(k) != v for k, v in meta.items()):
        return None
    last = store.last_completed(job)
    if last is None or last.id != old.meta.get("run") or not last.target_mark:
        return None
    revision = getattr(target, "revision", lambda: None)()
    left = json.loads(last.target_mark).get("revision")
    if revision is None or json.loads(json.dumps(revision, default=str)) != left:
        return None
    return old


def _changed(writer: SnapshotWriter, digests: LineDigests, old: Snapshot) -> list[int] | None:
    """Write every line's digest; return the positions that differ from ``old``'s, or
    None (a torn ``old``, or too many changed)."""
    wanted: list[int] | None = []
    old_lines, old_keys = old.blocks("lines"), old.blocks("keys")
    base = 0
    for new in _fixed(digests.blocks, None):
        if new is None:
            raise MultiLine
        writer.line_block(new)
        n = len(new)
        if wanted is not None:
            try:
                lines, keys = next(old_lines, None), next(old_keys, None)
            except Torn:
                wanted = None
                continue
            if lines is None or keys is None:
                wanted.extend(range(base, base + n))
            else:
                m = min(n, len(lines))
                if new[:m] != lines[:m] or 0 in keys[:m]:
                    wanted.extend(base + i for i, (a, b, k) in enumerate(
                        zip(new[:m], lines[:m], keys[:m], strict=True)) if a != b or k == 0)
                wanted.extend(range(base + m, base + n))
            if len(wanted) > min(MAX_LINES, max(base + n, old.count) // MAX_SHARE):
                wanted = None
        base += n
    if wanted is not None:
        try:
            for _ in old_lines:  # to their end: a torn file raises
                pass
            for _ in old_keys:
                pass
        except Torn:
            return None
    return wanted


class _Read:
    """The changed lines' keys, and their batches when they are few enough to keep."""

    def __init__(self) -> None:
        self.keys: set[int] = set()
        self.kept: list[Batch] | None = []


def _read_keys(source: Source, wanted: list[int], positions: Sequence[int],
               fields: Sequence[str], batch_rows: int) -> _Read:
    read = _Read()
    if len(wanted) > KEEP_LINES:
        read.kept = None
    for batch in source.read_lines(fields, wanted, batch_rows):
        rows, _ = drop_keyless(batch.rows, batch.items, [], positions, "")
        read.keys.update(key_digests(rows, positions))
        if read.kept is not None:
            read.kept.append(batch)
    return read


def _repeated(old: Snapshot, found: set[int], wanted: list[int], count: int
              ) -> list[int] | None:
    """The unchanged lines whose key a changed line has (``found``): read too, the run
    tells which comes first, as a full read would. None when there are too many."""
    base, limit = 0, min(old.count, count)
    repeated: list[int] = []
    try:
        for block in old.blocks("keys"):
            end = max(0, min(len(block), limit - base))
            hits = found.intersection(block[:end])
            if hits:  # a changed line's own old key is no repeat (the keys were unique)
                lo, hi = bisect_left(wanted, base), bisect_left(wanted, base + end)
                for digest in hits - {block[p - base] for p in wanted[lo:hi]}:
                    repeated.append(base + block.index(digest))
                if len(repeated) > MAX_REPEATED:
                    return None
            base += len(block)
    except Torn:
        return None  # (read whole)
    return repeated


def _fixed(blocks: Iterator[Any], count: int | None) -> Iterator[Any]:
    """``blocks`` of digests cut again into ``BLOCK``-long arrays (as a snapshot's are);
    with ``count``, cut or padded with zeros to ``count`` in all. A ``None`` block is
    passed on."""
    buffer, total = array("Q"), 0
    for block in blocks:
        if block is None:
            yield None
            return
        buffer.extend(block)
        while len(buffer) >= BLOCK:
            out = buffer[:BLOCK]
            del buffer[:BLOCK]
            if count is not None:
                out = out[:max(0, count - total)]
            total += len(out)
            if out:
                yield out
    if count is not None:
        buffer = buffer[:max(0, count - total)]
    if buffer:
        total += len(buffer)
        yield buffer
    if count is not None and total < count:
        yield from _zeros(count - total)


def _zeros(count: int) -> Iterator[array]:
    for start in range(0, count, BLOCK):
        yield array("Q", bytes(min(BLOCK, count - start) * 8))
