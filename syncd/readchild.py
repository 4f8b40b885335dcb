"""The reader process (``syncd.engine.readahead``'s child): read a source, send batches.

A module of its own, so that the child imports only what reading needs. The job comes
pickled on stdin: the opened source, the fields, the checkpoint, the batch size, the
engine's ``Screen``, the target's preparer, and what records the lines' snapshot
(``line_snapshot.KeyBlocks``; the lines' digests are sent first). Each message on
stdout is a length and a pickle.
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import sys
import traceback
from collections.abc import Iterator
from typing import IO, Any

from syncd.adapters.records import Batch
from syncd.errors import SourceError, SyncdError

HEADER = struct.Struct("<Q")  # the length of the pickle that follows
BATCH, END, FAILED, LINES = "batch", "end", "failed", "lines"
LINES_EVERY = 32  # batches sent between two blocks of the lines' digests
SEP = "\x1f"  # between the values of a packed batch; a batch holding one is pickled


def pack(batch: Batch) -> tuple[Any, ...] | None:
    """A batch of text rows as its columns joined in one text: a third of the time of
    pickling the tuples, here and where it is read. None where the rows are not all
    tuples of text of one width, or a value holds ``SEP``.

    The batch itself is left without rows and items; a ``list`` subclass of rows (what
    a target's preparer made) travels as its class and attributes.
    """
    rows, items = batch.rows, batch.items
    if not rows or len(rows) != len(items) or any(type(row) is not tuple for row in rows):
        return None
    width = len(rows[0])
    try:
        text = SEP.join([SEP.join(column) for column in zip(*rows, strict=True)]
                        + [SEP.join(items)]) if width else ""
    except (TypeError, ValueError):  # a value that is not text, or rows of two widths
        return None
    if not width or text.count(SEP) != (width + 1) * len(rows) - 1:
        return None
    batch.rows, batch.items = [], []
    return (type(rows), getattr(rows, "__dict__", None), len(rows), width,
            text.encode("utf-8", "surrogatepass"))


def unpack(batch: Batch, packed: tuple[Any, ...]) -> Batch:
    """``batch`` with the rows and items ``pack`` took out of it."""
    kind, state, count, width, blob = packed
    values = blob.decode("utf-8", "surrogatepass").split(SEP)
    columns = [values[i * count:(i + 1) * count] for i in range(width)]
    rows = list(zip(*columns, strict=True))
    batch.rows = rows if kind is list else kind(rows)
    if state:
        batch.rows.__dict__.update(state)
    batch.items = values[width * count:]
    return batch


class Remote(Exception):
    """The traceback of an unexpected error in the child, as its cause."""


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(body)))
    out.write(body)
    out.flush()


def _shareable(exc: Exception) -> Exception:
    """``exc`` if it crosses the pipe as it is, else a ``SourceError`` saying it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return SourceError(f"{type(exc).__name__}: {exc}")
    return exc


def _line_digests(source: Any) -> Iterator[Any]:
    """The source's lines' digests, a block at a time (a None block: it has none)."""
    digests = source.line_digests()
    if digests is None:
        yield None
        return
    yield from digests.blocks


def main() -> None:
    """The child: read the job from stdin, send the batches on stdout."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a plugin prints goes to stderr, never into the batches
    source, fields, checkpoint, batch_rows, prepare, screen, record = pickle.load(
        sys.stdin.buffer)
    try:
        try:
            lines = _line_digests(source) if record is not None else iter(())
            for sent, batch in enumerate(source.read(fields, checkpoint, batch_rows)):
                screen(batch)
                keys = record(batch.rows, batch.items) if record is not None else None
                if prepare is not None:
                    batch.rows, batch.items = prepare(batch.rows, batch.items)
                packed = pack(batch)
                _send(out, (BATCH, batch, packed, keys))
                if sent % LINES_EVERY == 0:  # while the run writes: it waits on no block
                    for block in itertools.islice(lines, 1):
                        _send(out, (LINES, block))
            for block in lines:
                _send(out, (LINES, block))
            screen.close()
            _send(out, (END, source))
        except BrokenPipeError:
            raise
        except Exception as exc:  # told to the run, which fails or retries the attempt
            expected = isinstance(exc, SyncdError | OSError)
            _send(out, (FAILED, _shareable(exc), "" if expected else traceback.format_exc()))
    except BrokenPipeError:  # the run is gone: nobody wants the rest
        os._exit(0)


if __name__ == "__main__":
    main()
