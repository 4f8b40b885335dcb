"""The ``csv`` source: rows of a delimited text file, streamed and resumable.

The file is read in binary, line by line, and each line is decoded before it is
handed to :func:`csv.reader`. ``csv.reader`` pulls one line at a time and never
reads ahead, so after every record the file position is exactly that record's
end: a checkpoint is a byte offset plus the physical line number reached, and a
run resumes by seeking there. A line that does not decode, a record with the
wrong number of fields or one ``csv`` rejects becomes an ``ItemError`` on its
line while the rest of the file syncs. A file with no header or no text at all is
a ``SourceError``: never a complete source with no records.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import stat as stat_module
from array import array
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from syncd.adapters import (
    Batch,
    Checkpoint,
    LineDigests,
    Row,
    RunContext,
    Source,
    SourceCapabilities,
)
from syncd.adapters import Options as AdapterOptions
from syncd.errors import JobError, RetryableError, SourceError

from . import csv_lines
from .csv_batches import batches
from .csv_decode import (
    SAMPLE_BYTES,
    check_text,
    csv_message,
    decoded_lines,
    encoding,
    shorten,
    sniff,
    unclosed_from,
)

READ_BUFFER = 256 * 1024
ASCII_PROBE = "\r\n,;\t|\"' azAZ09"  # a codec must encode these as ASCII to be split on b"\n"


class CsvSource(Source):
    """Rows of a CSV file; ``fields`` are header names (or ``1``, ``2``, … without one)."""

    name = "csv"
    description = "Rows of a CSV file, streamed; resumes from a byte offset."
    capabilities = SourceCapabilities(complete=True, header=True, portable=True)

    class Options(AdapterOptions):
        """What a job's ``[jobs.NAME.source]`` table may say for ``type = "csv"``."""

        path: str = Field("", description="The file to read when a run is given none.")
        delimiter: str = Field(
            "auto",
            description="One character (`\\t` is tab), or auto: sniffed among , ; tab | "
            "from the start of the file.",
        )
        encoding: str = Field(
            "auto",
            description="A Python codec name, or auto: UTF-8 with a BOM; without one, "
            "each line UTF-8 if it decodes, else cp1252.",
        )
        has_header: bool = Field(True, description="Whether the first record names the columns.")
        columns: list[str] = Field(
            default_factory=list,
            description="Names of the columns of a file without a header; by default 1, 2, 3, …",
        )
        max_field_kb: int = Field(
            10240, ge=1, description="Largest field accepted, in KiB; a larger one fails its row."
        )

        @field_validator("delimiter")
        @classmethod
        def _one_character(cls, value: str) -> str:
            value = "\t" if value == "\\t" else value
            if value != "auto" and (len(value) != 1 or value in '"\r\n'):
                raise ValueError(
                    "must be auto or one character (\\t for tab), not a quote or a newline"
                )
            return value

        @field_validator("encoding")
        @classmethod
        def _line_codec(cls, value: str) -> str:
            if value == "auto":
                return value
            try:
                ascii_compatible = ASCII_PROBE.encode(value) == ASCII_PROBE.encode("ascii")
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
            if not ascii_compatible:
                raise ValueError(f"{value!r} is not ASCII-compatible (UTF-16/32 are not supported)")
            return value

        @model_validator(mode="after")
        def _columns_without_header(self) -> CsvSource.Options:
            if self.columns and self.has_header:
                raise ValueError(
                    "columns names the columns of a file without a header: "
                    "set has_header = false too"
                )
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("columns has a name twice")
            return self

    def __init__(self, options: CsvSource.Options, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.options: CsvSource.Options = options
        path = identifier or options.path
        if not path:
            raise SourceError(
                "the csv source has no file: set `path` in the job's source or give one (--file)"
            )
        self._given = Path(path).expanduser()
        self._path = self._given.resolve()
        #: (dev, ino, size, mtime_ns) of the file when a read opened it and when it ended
        self._read_stats: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def identifier(self) -> str:
        return str(self._path)

    def fingerprint(self) -> dict[str, Any]:
        """Size, mtime and sha256, so a file replaced since a checkpoint is read anew."""
        try:
            with self._open() as f:
                stat = os.fstat(f.fileno())
                digest = hashlib.file_digest(f, "sha256")
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}

    def content_digest(self, fingerprint: dict[str, Any]) -> str | None:
        """The file's sha256: the same bytes give the same records (options are the job's)."""
        return fingerprint.get("sha256")

    def _open(self) -> io.FileIO:
        """The file, never through a link or into a FIFO or device.

        The path was resolved when the source was made (a link given by the user is
        followed then); a link or special file found here later was swapped in since,
        e.g. into a watched folder by someone who hopes the root daemon reads it.
        """
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceError(f"{self._path} was replaced by a symbolic link; "
                                  "refused, nothing was read") from None
            raise
        mode = os.fstat(fd).st_mode
        if not stat_module.S_ISREG(mode):
            os.close(fd)
            if stat_module.S_ISDIR(mode):
                raise SourceError(f"cannot read {self._path}: Is a directory")
            raise SourceError(f"{self._path} is not a regular file; refused, nothing was read")
        return open(fd, "rb", buffering=0)

    def check(self, ctx: RunContext) -> str:
        """``syncd check``: the file opens and its first bytes read (nothing else)."""
        try:
            with self._open() as f:
                size = os.fstat(f.fileno()).st_size
                f.read(1)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return f"file {self._path} is readable ({size} bytes)"

    def _open_buffered(self) -> io.BufferedReader:
        """``_open`` with the large read buffer the CSV reader wants."""
        return io.BufferedReader(self._open(), READ_BUFFER)

    def size(self) -> int:
        """Bytes: ``Batch.progress`` counts the same unit."""
        try:
            return self._path.stat().st_size
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def header(self) -> list[str]:
        """The column names a mapping can use (for ad-hoc jobs mapped by name)."""
        if self.options.columns or not self.options.has_header:
            return list(self.options.columns)
        try:
            with self._open_buffered() as f:
                codec, skip, delimiter = self._sample(f)
                first, _, _ = self._first_record(f, skip, codec, delimiter)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return first

    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> Iterator[Batch]:
        with self._reading() as f:
            yield from self._read(f, fields, checkpoint, max(1, batch_rows))

    @contextlib.contextmanager
    def _reading(self) -> Iterator[io.BufferedReader]:
        """The file, for a read to its end: ``_read_stats`` tell ``unchanged_since`` how
        it was when opened and when the read ended."""
        # Process-wide in the csv module: the last run to start sets it.
        csv.field_size_limit(self.options.max_field_kb * 1024)
        try:
            with self._open_buffered() as f:
                opened = os.fstat(f.fileno())
                if self._read_stats and self._read_stats[0][:2] != _identity(opened)[:2]:
                    raise RetryableError(f"{self._path} was replaced since this run first "
                                         "read it; the run starts over on the new file")
                yield f
                self._read_stats = (_identity(opened), _identity(os.fstat(f.fileno())))
        except OSError as exc:  # opening, or a disk failing mid-file
            raise self._unreadable(exc) from exc

    def unchanged_since(self, fingerprint: dict[str, Any]) -> bool:
        """Was the file this run read left alone while it read it?

        Judged on the open file, not the path: a file renamed over ours while we read
        leaves what we read whole (it is a new arrival of its own), while one written
        to or truncated in place changes size or mtime under us.
        """
        if self._read_stats is None:
            return self.fingerprint() == fingerprint
        start, end = self._read_stats
        return start == end and start[2:] == (fingerprint["size"], fingerprint["mtime_ns"])

    def _sample(self, f: io.BufferedReader) -> tuple[str, int, str]:
        """Codec, BOM length and delimiter, from the file's start; refuses a non-text file."""
        sample = f.read(SAMPLE_BYTES)
        check_text(sample, self._path)
        codec, skip = encoding(self.options.encoding, sample)
        delimiter = self.options.delimiter
        if delimiter == "auto":
            delimiter = sniff(sample[skip:], codec, truncated=len(sample) == SAMPLE_BYTES)
        return codec, skip, delimiter

    def _read(
        self,
        f: io.BufferedReader,
        fields: Sequence[str],
        checkpoint: Checkpoint | None,
        batch_rows: int,
    ) -> Iterator[Batch]:
        codec, delimiter, names, start, start_line = self._layout(f)
        getter, single = self._getter(fields, names)

        if checkpoint:
            try:
                offset, line = int(checkpoint["offset"]), int(checkpoint["line"])
            except (KeyError, TypeError, ValueError):
                raise SourceError(f"cannot resume {self._path} from {checkpoint!r}") from None
            if offset > start:
                start, start_line = offset, line
        f.seek(start)

        def lines() -> tuple[Any, list[str | None]]:
            bad: list[str | None] = []
            return csv.reader(decoded_lines(f, codec, bad), delimiter=delimiter), bad

        yield from batches(f, lines, len(names), getter, single, start_line, batch_rows)

    def _layout(self, f: io.BufferedReader) -> tuple[str, str, list[str], int, int]:
        """Codec, delimiter, column names, and the offset and line number the records
        start after."""
        codec, skip, delimiter = self._sample(f)
        first, start, start_line = self._first_record(f, skip, codec, delimiter)
        if self.options.columns:
            return codec, delimiter, list(self.options.columns), skip, 0
        if self.options.has_header:
            return codec, delimiter, first, start, start_line
        return codec, delimiter, [str(i) for i in range(1, len(first) + 1)], skip, 0

    def line_digests(self) -> LineDigests | None:
        """Each line's digest after the header (``csv_lines``)."""
        with self._open_buffered() as f:
            codec, delimiter, names, start, start_line = self._layout(f)
        layout = json.dumps([codec, delimiter, names])
        return LineDigests(layout, start_line + 1, self._digested(start))

    def _digested(self, start: int) -> Iterator[array | None]:
        try:
            with self._open_buffered() as f:
                yield from csv_lines.line_digests(f, start)
        except csv_lines.MultiLine:
            yield None
        except OSError as exc:
            raise self._unreadable(exc) from exc

    def read_lines(self, fields: Sequence[str], positions: Sequence[int],
                   batch_rows: int) -> Iterator[Batch]:
        with self._reading() as f:
            codec, delimiter, names, start, start_line = self._layout(f)
            getter, single = self._getter(fields, names)
            yield from csv_lines.read_lines(f, start, start_line + 1, positions, codec,
                                            delimiter, len(names), getter, single,
                                            max(1, batch_rows))

    def _first_record(
        self, f: io.BufferedReader, start: int, codec: str, delimiter: str
    ) -> tuple[list[str], int, int]:
        """The first non-blank record: the header, or the width of a headerless file.

        A file without one cannot be read at all: taken as a complete source with no
        records it would remove every record of the job (``on_missing``).
        """
        f.seek(start)
        bad: list[str | None] = []
        reader = csv.reader(decoded_lines(f, codec, bad), delimiter=delimiter)
        try:
            record = next((r for r in reader if r), None)
        except csv.Error as exc:
            raise SourceError(
                f"{self._path}: line {reader.line_num}: {csv_message(exc)}") from exc
        if record and bad and bad[-1] is None:
            line = unclosed_from(reader.line_num, record[-1])
            what = "the header opens" if self.options.has_header else "the first record opens"
            raise SourceError(f"{self._path}: line {line}: {what} a quoted field that is "
                              "never closed")
        if self.options.has_header and not self.options.columns:
            names = [name.strip() for name in record or []]
            if not any(names):
                raise SourceError(f"{self._path} has no header: no line names a column")
            return names, f.tell(), reader.line_num
        if record is None:
            raise SourceError(f"{self._path} holds no record: only blank lines")
        return record, f.tell(), reader.line_num

    def _getter(
        self, fields: Sequence[str], names: list[str]
    ) -> tuple[Callable[[list[str]], Any], bool]:
        """Pick the requested fields out of a record in one C call; True if it returns a scalar."""
        where = "the header" if self.options.has_header else "the columns"
        index: dict[str, int] = {}
        for i, name in enumerate(names):
            index.setdefault(name, i)
        positions = []
        for name in fields:
            if name not in index:
                raise JobError(
                    f"column {name!r} is not in {where} of {self._path}",
                    hint=shorten(f"columns: {', '.join(names)}"),
                )
            if names.count(name) > 1:
                raise JobError(
                    f"column {name!r} appears {names.count(name)} times in {where} of {self._path}",
                    hint="rename one, or set has_header = false and name the columns",
                )
            positions.append(index[name])
        if not positions:
            return _no_fields, False
        return itemgetter(*positions), len(positions) == 1

    def _unreadable(self, exc: OSError) -> SourceError:
        # ``--file /dev/stdin`` resolves to a pipe's name, which is no path: say what it is
        if isinstance(exc, FileNotFoundError) and _special(self._given):
            return SourceError(f"{self._given} is not a regular file; refused, "
                               "nothing was read (give the file itself)")
        return SourceError(f"cannot read {self._path}: {exc.strerror or exc}")


def _special(path: Path) -> bool:
    """``path`` names something that is there and is not a regular file or a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat_module.S_ISREG(mode) or stat_module.S_ISDIR(mode))


def _no_fields(record: list[str]) -> Row:
    return ()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
