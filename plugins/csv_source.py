"""The ``csv`` source: rows of a delimited text file, streamed and resumable.

The file is read in binary, line by line, and each line is decoded before it is
handed to :func:`csv.reader`. ``csv.reader`` pulls one line at a time and never
reads ahead, so after every record the file position is exactly that record's
end: a checkpoint is a byte offset plus the physical line number reached, and a
run resumes by seeking there. A line that does not decode, a record with the
wrong number of fields or one ``csv`` rejects becomes an ``ItemError`` on its
line while the rest of the file syncs.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint, ItemError, Row, Source
from syncd.adapters import Options as AdapterOptions
from syncd.errors import JobError, SourceError

if TYPE_CHECKING:
    from syncd.plugins import Registry

SAMPLE_BYTES = 64 * 1024  # how much of the file's start decides encoding and delimiter
HASH_CHUNK = 1024 * 1024
READ_BUFFER = 256 * 1024
DELIMITERS = ",;\t|"  # what delimiter = "auto" chooses among, preferred first on a tie
ASCII_PROBE = "\r\n,;\t|\"' azAZ09"  # a codec must encode these as ASCII to be split on b"\n"


class CsvSource(Source):
    """Rows of a CSV file; ``fields`` are header names (or ``1``, ``2``, … without one)."""

    name = "csv"
    description = "Rows of a CSV file, streamed; resumes from a byte offset."

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
            description="A Python codec name, or auto: UTF-8 with or without BOM, else cp1252.",
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
        self._path = Path(path).expanduser().resolve()

    @property
    def identifier(self) -> str:
        return str(self._path)

    def fingerprint(self) -> dict[str, Any]:
        """Size, mtime and sha256, so a file replaced since a checkpoint is read anew."""
        digest = hashlib.sha256()
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        try:
            with open(self._path, "rb", buffering=0) as f:
                stat = os.fstat(f.fileno())
                while n := f.readinto(buffer):
                    digest.update(view[:n])
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}

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
            with open(self._path, "rb", buffering=READ_BUFFER) as f:
                sample = f.read(SAMPLE_BYTES)
                codec, skip = _encoding(self.options.encoding, sample)
                delimiter = self.options.delimiter
                if delimiter == "auto":
                    delimiter = _sniff(sample[skip:], codec, len(sample) == SAMPLE_BYTES)
                first, _, _ = self._first_record(f, skip, codec, delimiter)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return [name.strip() for name in first or []]

    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> Iterator[Batch]:
        # Process-wide in the csv module: the last run to start sets it.
        csv.field_size_limit(self.options.max_field_kb * 1024)
        try:
            with open(self._path, "rb", buffering=READ_BUFFER) as f:
                yield from self._read(f, fields, checkpoint, max(1, batch_rows))
        except OSError as exc:  # opening, or a disk failing mid-file
            raise self._unreadable(exc) from exc

    def _read(
        self,
        f: io.BufferedReader,
        fields: Sequence[str],
        checkpoint: Checkpoint | None,
        batch_rows: int,
    ) -> Iterator[Batch]:
        sample = f.read(SAMPLE_BYTES)
        codec, skip = _encoding(self.options.encoding, sample)
        delimiter = self.options.delimiter
        if delimiter == "auto":
            delimiter = _sniff(sample[skip:], codec, truncated=len(sample) == SAMPLE_BYTES)

        names: list[str] | None = list(self.options.columns) or None
        start, start_line = skip, 0
        if names is None:
            first, end, end_line = self._first_record(f, skip, codec, delimiter)
            if first is None:  # nothing but blank lines: done, at the end
                yield Batch([], [], {"offset": end, "line": end_line}, progress=end)
                return
            if self.options.has_header:
                names = [name.strip() for name in first]
                start, start_line = end, end_line
            else:
                names = [str(i) for i in range(1, len(first) + 1)]
        getter, single = self._getter(fields, names)

        if checkpoint:
            try:
                offset, line = int(checkpoint["offset"]), int(checkpoint["line"])
            except (KeyError, TypeError, ValueError):
                raise SourceError(f"cannot resume {self._path} from {checkpoint!r}") from None
            if offset > start:
                start, start_line = offset, line
        f.seek(start)
        bad: list[UnicodeDecodeError] = []
        reader = csv.reader(_decoded_lines(f, codec, bad), delimiter=delimiter)
        yield from _batches(f, reader, bad, len(names), getter, single, start_line, batch_rows)

    def _first_record(
        self, f: io.BufferedReader, start: int, codec: str, delimiter: str
    ) -> tuple[list[str] | None, int, int]:
        """The first non-blank record (the header, or the width of a headerless file)."""
        f.seek(start)
        reader = csv.reader(_decoded_lines(f, codec, []), delimiter=delimiter)
        try:
            for record in reader:
                if record:
                    return record, f.tell(), reader.line_num
        except csv.Error as exc:
            raise SourceError(f"cannot read the first record of {self._path}: {exc}") from exc
        return None, f.tell(), reader.line_num

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
                    hint=_shorten(f"columns: {', '.join(names)}"),
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
        return SourceError(f"cannot read {self._path}: {exc.strerror or exc}")


def _shorten(text: str, limit: int = 200) -> str:
    """A hint stays readable even when the "header" is binary garbage."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _no_fields(record: list[str]) -> Row:
    return ()


def _encoding(option: str, sample: bytes) -> tuple[str, int]:
    """The codec to decode lines with, and how many BOM bytes to skip at the start.

    Decided from the file's first bytes only, so a resumed run decides the same.
    """
    if option == "auto":
        if sample.startswith(codecs.BOM_UTF8):
            return "utf-8", len(codecs.BOM_UTF8)
        try:
            # The sample may end inside a multibyte character: an incremental decoder
            # that is not told the input is final leaves those bytes aside.
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < SAMPLE_BYTES)
        except UnicodeDecodeError:
            return "cp1252", 0
        return "utf-8", 0
    codec = codecs.lookup(option).name
    if codec in ("utf-8", "utf-8-sig"):
        return "utf-8", len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    return codec, 0


def _sniff(sample: bytes, codec: str, truncated: bool) -> str:
    """The delimiter among ``DELIMITERS`` that splits the sample's records most evenly.

    Each candidate parses the sample; the winner gives the most records the same
    number (>= 2) of fields, then the most fields. ``,`` when none splits anything.
    """
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(sample, final=False)
    if truncated and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # drop the record cut by the sample's end
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        widths = []
        try:
            for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                if record:
                    widths.append(len(record))
        except csv.Error:
            pass  # judge on what parsed
        if not widths:
            continue
        width, count = Counter(widths).most_common(1)[0]
        score = (count / len(widths), width)
        if width >= 2 and score > best_score:
            best, best_score = delimiter, score
    return best


def _decoded_lines(
    f: io.BufferedReader, codec: str, bad: list[UnicodeDecodeError]
) -> Iterator[str]:
    """Lines of ``f`` as text; one that does not decode is replaced and noted in ``bad``."""
    for raw in f:
        try:
            line = raw.decode(codec)
        except UnicodeDecodeError as exc:
            bad.append(exc)
            line = raw.decode(codec, "replace")
        yield line


def _batches(
    f: io.BufferedReader,
    reader: Any,  # a csv.reader over _decoded_lines(f, …, bad)
    bad: list[UnicodeDecodeError],
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
    """
    prev = 0  # reader.line_num at the end of the previous batch
    while True:
        rows: list[Any] = []
        ends: list[int] = []  # reader.line_num after each record, good or not
        odd: list[int] = []  # indexes in ``ends`` of records that are not in ``rows``
        errors: list[ItemError] = []
        blanks = 0
        add_row, add_end = rows.append, ends.append
        at_end = False
        while not at_end and len(ends) - blanks < batch_rows:
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
                errors.append(ItemError("parsing", "csv", str(exc), f"line {base + last + 1}"))
                continue
            at_end = len(ends) - before < want
        if not at_end:
            at_end = not f.peek(1)  # no more bytes: this full batch is the last one
        if single:
            rows = list(zip(rows))
        offset = f.tell()
        yield Batch(
            rows,
            _labels(ends, odd, prev, base),
            {"offset": offset, "line": base + reader.line_num},
            errors,
            progress=offset,
        )
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


@hookimpl(trylast=True)
def syncd_register_adapters(registry: Registry) -> None:
    """Offer ``csv``; ``trylast`` lets a plugin's own ``csv`` source take the name."""
    registry.add_source(CsvSource)
