"""What a run does with its file's lines (``changed_lines``): reads the wanted ones or
all, records the key digest each line wrote, and leaves the snapshot for the next run.
"""

from __future__ import annotations

import contextlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from syncd.adapters import Batch, LineDigests, Row, Source, WriteResult
from syncd.engine.line_snapshot import (
    KeyBlocks,
    Snapshot,
    SnapshotWriter,
    Torn,
    fixed_blocks,
    good_rows,
    key_digests,
    line_numbers,
    zeros,
)
from syncd.engine.readahead import ReadAhead


class LinePlan:
    """What a run does with its file's lines: reads the ``wanted`` ones (None: all),
    and records the key each line wrote, for the snapshot it leaves."""

    def __init__(self, writer: SnapshotWriter, first_line: int, positions: Sequence[int],
                 wanted: Sequence[int] | None = None, old: Snapshot | None = None,
                 batches: list[Batch] | None = None, lines: LineDigests | None = None
                 ) -> None:
        self.writer, self.first_line, self.positions = writer, first_line, list(positions)
        self.wanted, self.old = wanted, old
        self.batches = batches  # the wanted lines' batches, read already (when few)
        self.lines = lines  # digests still to write (a full read: here or by its reader)
        self.by_reader = False  # the reader process sends the lines' digests
        self.blocks = KeyBlocks(first_line, positions)
        self.next = 0  # (a full read) key digests written so far
        #: (a changed-lines read) the positions of the rows written, in order, and their
        #: key digests: arrays, 16 bytes a row (a dict took 100)
        self.patched, self.patches = array("Q"), array("Q")
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
            if self.patched and min(lines) <= self.patched[-1]:
                self.broken = True  # (rows come in file order)
                return
            order = sorted(range(len(lines)), key=lines.__getitem__)
            digests = key_digests(good, self.positions)
            self.patched.extend(lines[i] - first for i in order)
            self.patches.extend(digests[i] for i in order)
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
            for gap in zeros(start - self.next):
                self.writer.key_block(gap)
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
            yield from zeros(count - self.next)
            return
        assert self.old is not None
        wanted, patched, base = self.wanted, self.patched, 0
        for block in fixed_blocks(self.old.blocks("keys"), count):
            end = base + len(block)
            for i in range(bisect_left(wanted, base), bisect_left(wanted, end)):
                block[wanted[i] - base] = 0  # (what wrote nothing now reads again)
            for i in range(bisect_left(patched, base), bisect_left(patched, end)):
                block[patched[i] - base] = self.patches[i]
            yield block
            base = end

    def read(self, source: Source, fields: Sequence[str], batch_rows: int) -> Iterator[Batch]:
        """The wanted lines' batches."""
        assert self.wanted is not None
        if self.batches is None:
            return source.read_lines(fields, self.wanted, batch_rows)
        batches, self.batches = self.batches, None
        return iter(batches)

    def recorders(self) -> tuple[KeyBlocks, Callable[[array | None], None]]:
        """What a reader process is given to digest the keys and lines."""
        return self.blocks, self.from_reader

    def reading(self, stream: object) -> bool:
        """The run reads with ``stream``: a reader process digests the lines (and the
        keys, before it sorts them), else they are digested here, now. False when the
        file has no line digests: no snapshot then."""
        if isinstance(stream, ReadAhead):
            self.by_reader, self.lines = self.lines is not None, None
            return True
        if self.take_lines():
            return True
        self.discard()
        return False

    def leave(self, run_id: int, log: Any) -> None:
        """Leave the snapshot for the next run, once this one completed with its mark."""
        if self.wanted is not None:
            log.info("read only the lines that changed", read=len(self.wanted))
        why = self.keep(run_id)
        if why:
            log.warning("no snapshot of the lines for the next run", error=why)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.discard()
