"""Grouping a CSV reader's records into batches, each ending at a checkpoint.

Split from :mod:`csv_source` (opening, sniffing, options): this is the hot loop.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from syncd.adapters import Batch, ItemError
from syncd.errors import SourceError

from .csv_decode import csv_message, unclosed_from

UNCLOSED = "a quoted field opened here is never closed; the lines after it are read again"
FIELD_LIMIT = "field larger than field limit"
OVERSIZED = ("a field larger than max_field_kb runs from here to line {}: most likely a "
             "quoted field opened here is never closed; the lines after this one are read again")


def batches(
    f: io.BufferedReader,
    lines: Callable[[], tuple[Any, list[str | None]]],  # a csv.reader from f's position
    width: int,
    getter: Callable[[list[str]], Any],
    single: bool,
    base: int,
    batch_rows: int,
) -> Iterator[Batch]:
    """Group records into batches, each ending at a checkpoint.

    The hot loop does only what every good record needs: one length test, one
    emptiness test of ``bad``, the C ``itemgetter`` and two appends. Line labels
    are formatted per batch from the end line of every record; anything odd
    (blank, undecodable, wrong width, rejected by csv) takes the slow branch.

    A quoted field never closed runs to the end of the file: that record is one
    error on the line the quote opened on, its batch ends there, and reading goes
    on from the next line with a fresh reader, so no row after it is lost.
    """
    reader, bad = lines()
    prev = 0  # reader.line_num at the end of the previous batch
    while True:
        rows: list[Any] = []
        ends: list[int] = []  # reader.line_num after each record, good or not
        odd: list[int] = []  # indexes in ``ends`` of records that are not in ``rows``
        errors: list[ItemError] = []
        blanks = 0
        add_row, add_end = rows.append, ends.append
        at_end = False
        reopen = 0  # the line of an unclosed quote: read again from the line after it
        batch_start = f.tell()
        while not at_end and not reopen and len(ends) - blanks < batch_rows:
            want = batch_rows - (len(ends) - blanks)
            before = len(ends)
            try:
                for record in islice(reader, want):
                    if len(record) == width and not bad:
                        add_row(getter(record))
                        add_end(reader.line_num)
                        continue
                    item = f"line {base + (ends[-1] if ends else prev) + 1}"
                    odd.append(len(ends))
                    add_end(reader.line_num)
                    if bad and bad[-1] is None:  # the file ended inside a quoted field
                        reopen = unclosed_from(reader.line_num, record[-1])
                        errors.append(ItemError("parsing", "unclosed_quote", UNCLOSED,
                                                f"line {base + reopen}"))
                        break
                    if bad:
                        errors.append(ItemError("parsing", "encoding", str(bad[0]), item))
                        bad.clear()
                    elif not record:
                        blanks += 1
                    else:
                        message = f"expected {width} fields, got {len(record)}"
                        errors.append(ItemError("validation", "field_count", message, item))
            except csv.Error as exc:
                last = ends[-1] if ends else prev
                if reader.line_num == last:  # nothing consumed: cannot happen, but never spin
                    raise SourceError(f"csv stopped at line {base + last}: {exc}") from exc
                odd.append(len(ends))
                add_end(reader.line_num)
                bad.clear()
                message = csv_message(exc)
                if FIELD_LIMIT in message and reader.line_num - last > 1:
                    reopen = last + 1  # most likely an unclosed quote: lose no line to it
                    message = OVERSIZED.format(base + reader.line_num)
                errors.append(ItemError("parsing", "csv", message, f"line {base + last + 1}"))
                continue
            at_end = not reopen and len(ends) - before < want
        if reopen:
            f.seek(batch_start)
            for _ in range(reopen - prev):
                f.readline()
        elif not at_end:
            at_end = not f.peek(1)  # no more bytes: this full batch is the last one
        if single:
            rows = list(zip(rows))
        offset = f.tell()
        line = base + (reopen or reader.line_num)
        yield Batch(rows, _labels(ends, odd, prev, base), {"offset": offset, "line": line},
                    errors, progress=offset)
        if reopen:
            if not f.peek(1):
                return
            reader, bad = lines()
            base, prev = line, 0
            continue
        if at_end:
            return
        prev = ends[-1] if ends else prev


def _labels(ends: list[int], odd: list[int], prev: int, base: int) -> list[str]:
    """``"line N"`` for every good record, N being the physical line it starts on."""
    if not ends:
        return []
    first = base + prev + 1
    if not odd and ends[-1] - prev == len(ends):  # one line per record: the usual case
        return [f"line {n}" for n in range(first, first + len(ends))]
    starts = [first, *(base + end + 1 for end in ends[:-1])]
    skip = set(odd)
    return [f"line {n}" for i, n in enumerate(starts) if i not in skip]
