"""Reading a large file in a process of its own, a batch ahead of the writes.

In one process, parsing and hashing a file cannot overlap SQLite's ``executemany``:
SQLite takes the GIL back after every row, so a parser thread beside it stalls it
(measured). A source that declares ``SourceCapabilities(portable=True)`` is therefore
pickled to a child process, which reads it from the run's checkpoint and runs the
target's ``preparer`` (content hashes, key order) on each batch, while the run's
thread unpickles the batch before and writes it.

Who finds keys repeated across batches (``repeats``): the run's own index when it reads
in its thread; the reader's, in general; the write, for a first load into an empty
target (``Target.empty``), where the run asks for the batches read so far again
(``read_again``) only once the write's counts show a repeat.

Nothing about checkpoints changes: a batch counts once the run commits it. A child
that dies fails the attempt retryably, and the next one reads again from the last
commit. A run that stops, fails or is killed closes the pipe, and the child exits
(it is killed outright when the run ends first).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import pickle
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from syncd.adapters import AsyncSource, Batch, Checkpoint, Preparer, Source
from syncd.engine.line_snapshot import KeyBlocks
from syncd.engine.reading import batches
from syncd.engine.screening import Screen
from syncd.errors import RetryableError
from syncd.readchild import BATCH, END, HEADER, LINES, Remote, unpack

#: smaller files are read in the run's thread: a child costs 0.4 s of CPU to start, and
#: gained nothing below about 400,000 rows (18 MB: 3.34 s against 3.01 s; 30 MB: 5.23 s
#: against 6.33 s, medians of three)
READ_AHEAD_BYTES = 24 * 1024 * 1024
#: the pipe from the child holds this much (Linux's most for a user, by default): a
#: few batches ahead, so that a slower batch of the child's does not stall the run
PIPE_BYTES = 1024 * 1024

def reader(source: Source | AsyncSource, fields: Sequence[str], checkpoint: Checkpoint | None,
           batch_rows: int, prepare: Preparer | None, screen: Screen | None,
           record: KeyBlocks | None = None,
           on_lines: Callable[[array | None], object] | None = None) -> ReadAhead | InThread:
    """The source's batches from ``checkpoint`` on: read by a child that screens and
    prepares them where it pays (a large file, a target with a preparer) and the source
    allows it (``portable``, ``screen`` given), else read in this thread as they are.
    A child also digests the lines and each batch's keys for the run's snapshot
    (``record``, ``on_lines``): a ``ReadAhead`` tells ``key_block`` with each batch."""
    job = None  # the read, pickled: for a child, or to read again (a first load only)
    if isinstance(source, Source) and source.capabilities.portable and screen \
            and (prepare or not screen.across):
        with contextlib.suppress(pickle.PicklingError, TypeError, AttributeError):
            job = pickle.dumps((source, tuple(fields), checkpoint, batch_rows, prepare,
                                screen, None), protocol=pickle.HIGHEST_PROTOCOL)
    # (a source that keeps something it cannot share is read here, and indexed)
    if job and screen and prepare and isinstance(source, Source) \
            and (source.size() or 0) >= READ_AHEAD_BYTES:
        child = job if record is None else pickle.dumps(
            (source, tuple(fields), checkpoint, batch_rows, prepare, screen, record),
            protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # no process to be had: read it here
            return ReadAhead(source, child, "reader" if screen.across else "write",
                             on_lines)
    repeats = "write" if job and screen and not screen.across else "run"
    return InThread(source, batches(source, fields, checkpoint, batch_rows), job, repeats)


def _close(stream: Iterator[Batch]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


class _Stream:
    """What both kinds of read share: who finds keys repeated across batches, and the
    batches so far, to read again once the write shows one."""

    def __init__(self, job: bytes | None, repeats: str) -> None:
        #: the run's own index ("run"), the reader's ("reader"), or the write's counts
        #: ("write") until the run indexes the keys itself
        self.repeats = repeats
        self.sent = 0  # batches handed to the run
        self._job = job

    def read_again(self) -> Iterator[Batch]:
        """The batches handed over before the last one, read again here as they were
        read (a ``portable`` source reads alike once pickled), unscreened and
        unprepared."""
        assert self._job is not None  # (``repeats`` is "write" only with a job)
        source, fields, checkpoint, batch_rows, *_ = pickle.loads(self._job)
        stream = source.read(fields, checkpoint, batch_rows)
        try:
            yield from itertools.islice(stream, self.sent - 1)
        finally:
            _close(stream)


class InThread(_Stream):
    """Batches read in the run's thread, with the same face as ``ReadAhead``."""

    screened = False

    def __init__(self, source: Source | AsyncSource, stream: Iterator[Batch],
                 job: bytes | None = None, repeats: str = "run") -> None:
        super().__init__(job, repeats)
        self.source, self._stream = source, stream

    def __iter__(self) -> Iterator[Batch]:
        for batch in self._stream:
            self.sent += 1
            yield batch

    def __enter__(self) -> InThread:
        return self

    def __exit__(self, *exc: object) -> None:
        _close(self._stream)


class ReadAhead(_Stream):
    """The child; iterate it for the batches, then ask ``source`` how the read ended."""

    screened = True  # keyless rows and keys repeated (see ``repeats``) are errors

    def __init__(self, source: Source, job: bytes, repeats: str = "reader",
                 on_lines: Callable[[array | None], object] | None = None) -> None:
        super().__init__(job, repeats)
        self.source = source  # replaced by the child's own once it read to the end
        self.on_lines = on_lines
        #: the key digests of the last batch's lines (``line_snapshot.KeyBlocks``)
        self.key_block: tuple[int, array] | None = None
        self._done = False
        # -P: never import from the working directory (a watched folder, say)
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-m", "syncd.readchild"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._out: IO[bytes] = self.process.stdout
        with contextlib.suppress(OSError, AttributeError):  # room for batches ahead
            fcntl.fcntl(self._out.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            self.process.stdin.write(job)
            self.process.stdin.close()
        except BrokenPipeError:  # it died at once; __iter__ says how
            pass

    def __iter__(self) -> Iterator[Batch]:
        while True:
            kind, payload, *rest = self._receive()
            if kind == BATCH:
                self.sent += 1
                self.key_block = rest[1]
                yield unpack(payload, rest[0]) if rest[0] is not None else payload
            elif kind == LINES:
                if self.on_lines is not None:
                    self.on_lines(payload)
            elif kind == END:
                self.source, self._done = payload, True
                return
            else:  # it failed, and exits
                self._done = True
                raise payload from (Remote(rest[0]) if rest and rest[0] else None)

    def _receive(self) -> tuple[Any, ...]:
        head = self._out.read(HEADER.size)
        size = HEADER.unpack(head)[0] if len(head) == HEADER.size else 0
        body = self._out.read(size) if size else b""
        if not size or len(body) < size:  # it died before or while it sent this
            raise RetryableError(f"the process reading {self.source.identifier} ended "
                                 f"unexpectedly ({self._how()}); it is read again from the "
                                 "last checkpoint")
        message: tuple[Any, ...] = pickle.loads(body)
        return message

    def _how(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def close(self) -> None:
        """Let the child exit once it sent everything, else kill it; release its pipe."""
        if self._done:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._out.close()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
