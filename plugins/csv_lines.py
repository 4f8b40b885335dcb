"""A CSV file's lines without parsing them: a digest of each, and the records of chosen
lines only (``Source.line_digests`` and ``Source.read_lines``).

Split from :mod:`csv_source` (opening, sniffing, options). A line's digest is its
CRC-32 and Adler-32 side by side (``digests64``, about 0.2 s per million lines): the
engine compares it with the same line's digest from the last run, position by
position, and parses only the lines that differ. A file whose lines are not each one
record (an odd number of quotes on a line: a quoted field may run on to the next)
gives no digests, and is read whole.
"""

from __future__ import annotations

import csv
import io
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from syncd.adapters import Batch, ItemError, digests64

from .csv_decode import csv_message, decoded_lines

BLOCK = 4 * 1024 * 1024  # bytes read at a time: lines are split out of each block


def blocks(f: io.BufferedReader, start: int) -> Iterator[tuple[int, list[bytes], bool]]:
    """(offset of the first line, the block's whole lines without their ``\\n``, whether
    a line holds a quote) from ``start`` on; a last line without ``\\n`` is a line."""
    f.seek(start)
    offset, rest = start, b""
    while True:
        block = f.read(BLOCK)
        text = rest + block
        lines = text.split(b"\n")
        rest = lines.pop()
        if not block:
            if rest:
                lines.append(rest)
            yield offset, lines, b'"' in text
            return
        yield offset, lines, b'"' in text
        offset += len(text) - len(rest)


def line_digests(f: io.BufferedReader, start: int) -> Iterator[array]:
    """The digests of the lines from ``start`` on, a block at a time; raises
    ``MultiLine`` at a line with an odd number of quotes."""
    for _, lines, quoted in blocks(f, start):
        if quoted and any(line.count(b'"') & 1 for line in lines):
            raise MultiLine
        if lines:
            yield digests64(lines)


class MultiLine(Exception):
    """A line may not be a whole record: the file has no line digests."""


def chosen_lines(f: io.BufferedReader, start: int, wanted: Sequence[int]
                 ) -> Iterator[tuple[int, bytes, int, int]]:
    """(position, raw line, offset after it, 0) of each wanted position (ascending, 0
    the line at ``start``); then (-1, b"", the file's size, its lines from ``start``)."""
    size = os.fstat(f.fileno()).st_size  # (a last line may lack its \n)
    first = 0  # the position of the block's first line
    i = 0
    for offset, lines, _ in blocks(f, start):
        end = first + len(lines)
        if i < len(wanted) and wanted[i] < end:
            ends = list(accumulate(map(len, lines)))
            while i < len(wanted) and wanted[i] < end:
                k = wanted[i] - first
                yield wanted[i], lines[k] + b"\n", min(offset + ends[k] + k + 1, size), 0
                i += 1
        first = end
    yield -1, b"", size, first


def read_lines(f: io.BufferedReader, start: int, first_line: int, wanted: Sequence[int],
               codec: str, delimiter: str, width: int, getter: Callable[[list[str]], Any],
               single: bool, batch_rows: int) -> Iterator[Batch]:
    """The records of the wanted lines, ``batch_rows`` lines a batch, each batch counting
    the lines it passed over (``unread``); a last, maybe empty batch reaches the end.
    Checkpoints are the full read's: a run resumed from one reads on from there."""
    rows: list[Any] = []
    items: list[str] = []
    errors: list[ItemError] = []
    taken = upto = 0  # lines read into this batch; positions covered by the last one
    for position, raw, after, total in chosen_lines(f, start, wanted):
        if position < 0:  # the rest of the file: lines left as they were
            yield _batch(rows, items, errors, single, after, first_line + total - 1,
                         total - upto - taken)
            return
        record, problem = _record(raw, codec, delimiter)
        item = f"line {first_line + position}"
        if problem:
            errors.append(ItemError("parsing", *problem, item=item))
        elif len(record) == width:
            rows.append(getter(record))
            items.append(item)
        elif record:
            errors.append(ItemError("validation", "field_count",
                                    f"expected {width} fields, got {len(record)}", item))
        taken += 1
        if taken == batch_rows:
            yield _batch(rows, items, errors, single, after, first_line + position,
                         position + 1 - upto - taken)
            rows, items, errors, taken, upto = [], [], [], 0, position + 1


def _record(raw: bytes, codec: str, delimiter: str
            ) -> tuple[list[str], tuple[str, str] | None]:
    """One line's record (``[]`` when blank), or (code, message) of why it has none,
    as the full read says it."""
    bad: list[str | None] = []
    text = next(decoded_lines([raw], codec, bad))
    if bad:
        return [], ("encoding", str(bad[0]))
    try:
        return next(csv.reader([text], delimiter=delimiter), []), None
    except csv.Error as exc:
        return [], ("csv", csv_message(exc))


def _batch(rows: list[Any], items: list[str], errors: list[ItemError], single: bool,
           offset: int, line: int, unread: int) -> Batch:
    return Batch(list(zip(rows)) if single else rows, items, {"offset": offset, "line": line},
                 errors, progress=offset, unread=unread)
