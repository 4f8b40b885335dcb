"""What a CSV file's bytes are: text or not, which encoding, which delimiter.

Split from :mod:`csv_source` (the reading and batching) so each stays small. Every
decision here is made from the file's first bytes or from one line at a time, so a
run resumed from a checkpoint decides exactly as the first one did.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from syncd.errors import SourceError

SAMPLE_BYTES = 64 * 1024  # how much of the file's start decides encoding and delimiter
DELIMITERS = ",;\t|"  # what delimiter = "auto" chooses among, preferred first on a tie
#: encoding = "auto" without a BOM: each line is UTF-8 if it decodes as UTF-8, else cp1252
AUTO = "utf-8, else cp1252"
#: the same rule, for a file whose start is not UTF-8: cp1252 is tried first where it
#: cannot matter, saving an exception per line (the result is the same, line by line)
AUTO_CP1252 = "cp1252, unless utf-8"
#: a lead byte and a continuation byte: no line without one is non-ASCII UTF-8
UTF8_PAIR = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
#: control bytes no text file holds (NUL, BEL, …); tab, line ends, FF, VT, ^Z and ESC are text
BINARY = bytes([*range(0, 9), *range(14, 26), *range(28, 32)])
TEXT = bytes(b for b in range(256) if b not in BINARY)
CR_IN_FIELD = "new-line character seen in unquoted field"


def check_text(sample: bytes, path: object) -> None:
    """Refuse a file that is empty or not text, before any of it is taken for records.

    Binary means more than 1% of the first bytes (and more than 8) are control bytes
    no text holds: a few stray NULs in text rows stay those rows' problem.
    """
    if not sample:
        raise SourceError(f"{path} is empty (0 bytes)")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(f"{path} is UTF-16 text: save it as UTF-8")
    count = len(sample) - len(sample.translate(None, BINARY))
    if count > max(8, len(sample) // 100):
        at = len(sample) - len(sample.lstrip(TEXT))
        raise SourceError(f"{path} does not look like a CSV text file (binary data at byte {at})")


def encoding(option: str, sample: bytes) -> tuple[str, int]:
    """The codec to decode lines with (or ``AUTO``), and how many BOM bytes to skip."""
    if option == "auto":
        if sample.startswith(codecs.BOM_UTF8):
            return "utf-8", len(codecs.BOM_UTF8)  # a BOM declares UTF-8: held to it
        try:  # the sample may end inside a character: leave those bytes aside
            codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        except UnicodeDecodeError:
            return AUTO_CP1252, 0
        return AUTO, 0
    codec = codecs.lookup(option).name
    if codec in ("utf-8", "utf-8-sig"):
        return "utf-8", len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    return codec, 0


def sniff(sample: bytes, codec: str, truncated: bool) -> str:
    """The delimiter among ``DELIMITERS`` that splits the sample's records most evenly.

    Each candidate parses the sample; the winner gives the most records the same
    number (>= 2) of fields, then the most fields. ``,`` when none splits anything.
    """
    codec = "utf-8" if codec in (AUTO, AUTO_CP1252) else codec
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


def _cp1252(raw: bytes, bad: list[str | None]) -> str:
    """A line that is not UTF-8, as cp1252; an error in ``bad`` when it is not that either."""
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        bad.append(_undecodable(exc, "neither UTF-8 nor cp1252"))
        return raw.decode("cp1252", "replace")


def decoded_lines(f: Iterable[bytes], codec: str, bad: list[str | None]) -> Iterator[str]:
    """Lines of ``f`` as text, for ``csv.reader``.

    A line that does not decode is replaced and a message appended to ``bad``; when
    the lines run out, ``None`` is appended: a record csv returns after that was cut
    by the end of the file inside a quoted field.
    """
    if codec == AUTO:  # per line, so one cp1252 row never garbles the UTF-8 ones
        for raw in f:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = _cp1252(raw, bad)
            yield line
    elif codec == AUTO_CP1252:
        maybe_utf8 = UTF8_PAIR.search
        for raw in f:
            line = None
            if not raw.isascii() and maybe_utf8(raw):
                with contextlib.suppress(UnicodeDecodeError):
                    line = raw.decode("utf-8")
            yield _cp1252(raw, bad) if line is None else line
    else:
        for raw in f:
            try:
                line = raw.decode(codec)
            except UnicodeDecodeError as exc:
                bad.append(_undecodable(exc, f"not valid {codec}"))
                line = raw.decode(codec, "replace")
            yield line
    bad.append(None)


def _undecodable(exc: UnicodeDecodeError, what: str) -> str:
    return f"byte 0x{exc.object[exc.start]:02x} (byte {exc.start + 1} of the line) is {what}"


def unclosed_from(end: int, field: str) -> int:
    """The line a quoted field opened on, given the line it ran to the file's end on."""
    return end - field.count("\n") + field.endswith("\n")


def csv_message(exc: csv.Error) -> str:
    """csv's complaint in the user's terms."""
    if CR_IN_FIELD in str(exc):
        return ("a carriage return (CR) inside an unquoted field: lines ending in CR alone "
                "(old Mac files) are not supported; save the file with LF or CRLF line ends")
    return str(exc)


def shorten(text: str, limit: int = 200) -> str:
    """A hint stays readable even when the "header" is binary garbage."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
