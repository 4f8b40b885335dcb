"""The csv source on files that are not what they claim: empty, binary, broken quotes, mixed
encodings. Each says what is wrong in the user's terms, and loses no good row."""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.errors import SourceError
from syncd_builtin.csv_source import CsvSource
from tests.builtin.test_csv_source import errors, items, read, rows, write


@pytest.fixture(autouse=True)
def _restore_field_size_limit() -> Iterator[None]:
    limit = csv.field_size_limit()
    yield
    csv.field_size_limit(limit)


def png() -> bytes:
    """A real (tiny) PNG: signature, IHDR, one compressed IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    raw = b"".join(b"\x00" + os.urandom(48) for _ in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes.fromhex("00000010000000100802000000"))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# --- nothing to read: never a complete source with no records -----------------


@pytest.mark.parametrize("has_header", [True, False])
def test_a_0_byte_file_cannot_be_read(tmp_path: Path, has_header: bool) -> None:
    path = write(tmp_path, b"", "zero.csv")
    with pytest.raises(SourceError) as info:
        read(path, ["1"] if not has_header else ["id"], has_header=has_header)
    assert str(info.value) == f"{path} is empty (0 bytes)"


@pytest.mark.parametrize(
    "data", [b"\xef\xbb\xbf", b"\n\r\n\n", b"\xef\xbb\xbf\r\n\r\n", b" ,  ,\n\n"],
    ids=["bom-only", "blank-lines", "bom-and-blank-lines", "blank-names"])
def test_a_file_without_a_header_cannot_be_read(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, data, "blank.csv")
    with pytest.raises(SourceError, match=r"blank\.csv has no header: no line names a column"):
        read(path, ["id"])
    with pytest.raises(SourceError, match="has no header"):
        CsvSource(CsvSource.Options(), str(path)).header()


def test_blank_lines_without_a_header_have_no_record_either(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\n", "blank.csv")
    with pytest.raises(SourceError, match=r"blank\.csv holds no record: only blank lines"):
        read(path, ["1"], has_header=False)


def test_a_header_alone_is_a_file_with_no_records(tmp_path: Path) -> None:
    assert rows(read(write(tmp_path, "id,name\n"), ["id"])) == []


# --- binary files -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["png", "random"])
def test_a_binary_file_is_not_a_csv_text_file(tmp_path: Path, kind: str) -> None:
    data = png() if kind == "png" else os.urandom(5000).replace(b"\n", b"\x00")
    path = write(tmp_path, data, "photo.csv")
    first = min(i for i, b in enumerate(data) if b < 9 or 13 < b < 26 or 27 < b < 32)
    message = f"{path} does not look like a CSV text file (binary data at byte {first})"
    for call in (lambda: read(path, ["id"]), CsvSource(CsvSource.Options(), str(path)).header):
        with pytest.raises(SourceError) as info:
            call()
        assert str(info.value) == message
        assert "universal-newline" not in str(info.value)


def test_utf16_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffid,name\n1,a\n".encode("utf-16-le"), "wide.csv")
    with pytest.raises(SourceError, match="is UTF-16 text: save it as UTF-8"):
        read(path, ["id"])


def test_a_few_nul_bytes_in_a_text_file_are_data(tmp_path: Path) -> None:
    body = "".join(f"{i},name {i}\n" for i in range(200))
    data = b"id,name\n" + body.encode() + b"200,a\x00b\n201,\x00\x00\n"
    assert len(rows(read(write(tmp_path, data), ["id", "name"]))) == 202


def test_a_lone_cr_line_end_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\r1,a\r2,b\r", "mac.csv")
    with pytest.raises(SourceError) as info:
        read(path, ["id"])
    assert "universal-newline" not in str(info.value)
    assert "line 1: a carriage return (CR) inside an unquoted field" in str(info.value)


# --- unterminated quotes --------------------------------------------------------

UNCLOSED = "a quoted field opened here is never closed; the lines after it are read again"


def test_an_unterminated_quote_names_its_line_and_the_rest_still_syncs(tmp_path: Path) -> None:
    data = 'id,name,genre,year\n1,a,rock,1999\n2,"b,pop,2000\n3,c,jazz,2001\n4,d,folk,2002\n'
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [("1", "a"), ("3", "c"), ("4", "d")]
    assert items(batches) == ["line 2", "line 4", "line 5"]
    assert [(e.type, e.code, e.message, e.item) for e in errors(batches)] == [
        ("parsing", "unclosed_quote", UNCLOSED, "line 3")]


def test_an_unterminated_quote_with_the_right_field_count_is_no_row(tmp_path: Path) -> None:
    data = 'id,text\n1,"x\ny"\n2,b\n3,c\n4,"last'
    batches = read(write(tmp_path, data), ["id", "text"], batch_rows=2)
    assert rows(batches) == [("1", "x\ny"), ("2", "b"), ("3", "c")]
    assert items(batches) == ["line 2", "line 4", "line 5"]
    assert [(e.code, e.item) for e in errors(batches)] == [("unclosed_quote", "line 6")]
    assert batches[-1].checkpoint == {"offset": len(data), "line": 6}


def test_an_unterminated_quote_opened_in_a_later_field_of_a_multiline_record(
        tmp_path: Path) -> None:
    data = 'id,a,b\n1,"two\nlines","never\n2,x,y\n'
    batches = read(write(tmp_path, data), ["id", "b"])
    assert [(e.code, e.item) for e in errors(batches)] == [("unclosed_quote", "line 3")]
    assert rows(batches) == [("2", "y")]


def test_resuming_after_an_unterminated_quote_reads_exactly_the_rest(tmp_path: Path) -> None:
    data = "id,text\n" + "".join(f"{i},t{i}\n" for i in range(1, 6)) + '6,"open\n' + "".join(
        f"{i},t{i}\n" for i in range(7, 12))
    path = write(tmp_path, data)
    full = read(path, ["text", "id"], batch_rows=2)
    for i, batch in enumerate(full):
        rest = read(path, ["text", "id"], checkpoint=batch.checkpoint, batch_rows=2)
        assert (rows(rest), items(rest), errors(rest)) == (
            rows(full[i + 1:]), items(full[i + 1:]), errors(full[i + 1:]))
    assert len(rows(full)) == 10


def test_an_unterminated_quote_in_the_header_cannot_be_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,"name\n1,a\n2,b\n', "q.csv")
    with pytest.raises(SourceError) as info:
        read(path, ["id"])
    assert str(info.value) == (f"{path}: line 1: the header opens a quoted field that is "
                               "never closed")
    with pytest.raises(SourceError, match="line 1: the first record opens a quoted field"):
        read(path, ["1"], has_header=False)


# --- one encoding per line, not per file ----------------------------------------


def test_a_cp1252_row_in_a_utf8_file_garbles_no_other_row(tmp_path: Path) -> None:
    data = ("id,name\n1,été\n2,café\n".encode() + "3,déjà vu\n".encode("cp1252")
            + "4,naïve \u2013 ok\n".encode())
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [
        ("1", "été"), ("2", "café"), ("3", "déjà vu"), ("4", "naïve \u2013 ok")]
    assert errors(batches) == []


def test_a_cp1252_row_in_the_utf8_sample_garbles_no_row_after_it(tmp_path: Path) -> None:
    data = ("id,name\n" + "1,x\n").encode() + "2,Müller\n".encode("cp1252") + "".join(
        f"{i},été {i}\n" for i in range(3, 20_000)).encode()
    batches = read(write(tmp_path, data), ["name"], batch_rows=5000)
    assert rows(batches)[1] == ("Müller",)
    assert rows(batches)[-1] == ("été 19999",)
    assert all("Ã" not in name for (name,) in rows(batches))


def test_a_line_neither_utf8_nor_cp1252_is_an_error_on_its_line(tmp_path: Path) -> None:
    data = "id,name\n1,été\n".encode() + b"2,\x81\x8d\n3,ok\n"
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [("1", "été"), ("3", "ok")]
    [error] = errors(batches)
    assert (error.type, error.code, error.item) == ("parsing", "encoding", "line 3")
    assert "neither UTF-8 nor cp1252" in error.message


def test_an_unterminated_quote_past_max_field_kb_loses_no_line_either(tmp_path: Path) -> None:
    body = "".join(f"{i},row {i} {'x' * 40}\n" for i in range(3, 60))
    data = 'id,text\n1,a\n2,"open\n' + body
    batches = read(write(tmp_path, data), ["id"], max_field_kb=1)
    [error] = errors(batches)
    assert (error.type, error.code, error.item) == ("parsing", "csv", "line 3")
    assert "larger than max_field_kb runs from here to line" in error.message
    assert "quoted field opened here is never closed" in error.message
    assert rows(batches) == [("1",)] + [(str(i),) for i in range(3, 60)]
    assert items(batches)[-1] == "line 60"


def test_a_single_line_field_past_max_field_kb_fails_its_row_only(tmp_path: Path) -> None:
    data = f'id,text\n1,"{"y" * 3000}"\n2,b\n'
    batches = read(write(tmp_path, data), ["id"], max_field_kb=2)
    assert rows(batches) == [("2",)]
    assert "field larger than field limit (2048)" in errors(batches)[0].message


@pytest.mark.parametrize("swap", ["symlink", "fifo"])
def test_a_link_or_fifo_swapped_in_after_the_source_was_made_is_refused_unread(
        tmp_path: Path, swap: str) -> None:
    """The watched folder checks a file before its run; this closes the window after it."""
    secret = tmp_path / "secret"
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    path = tmp_path / "x.csv"
    path.write_text("id,name\n1,a\n")
    source = CsvSource(CsvSource.Options(), str(path))
    path.unlink()
    if swap == "symlink":
        path.symlink_to(secret)
    else:
        os.mkfifo(path)
    for call in (source.fingerprint, source.header, lambda: list(source.read(["id"], None, 10))):
        with pytest.raises(SourceError, match="refused, nothing was read") as caught:
            call()
        assert "SECRET" not in str(caught.value)


def test_a_link_given_by_the_user_is_followed_once_when_the_source_is_made(
        tmp_path: Path) -> None:
    target = tmp_path / "2026-11-29.csv"
    target.write_text("id,name\n1,a\n")
    (tmp_path / "current.csv").symlink_to(target)
    source = CsvSource(CsvSource.Options(), str(tmp_path / "current.csv"))
    assert source.identifier == str(target)
    assert next(b.rows for b in source.read(["id"], None, 10)) == [("1",)]


def test_a_file_renamed_over_between_two_reads_of_one_run_is_not_mixed_in(
        tmp_path: Path) -> None:
    """The key pass of on_missing reads again: it must read what the run read, or stop."""
    from syncd.errors import RetryableError

    path = tmp_path / "x.csv"
    path.write_text("id,name\n1,a\n2,b\n")
    source = CsvSource(CsvSource.Options(), str(path))
    fingerprint = source.fingerprint()
    assert [r for b in source.read(["id"], None, 10) for r in b.rows] == [("1",), ("2",)]
    new = tmp_path / "new.csv"
    new.write_text("id,name\n3,c\n")
    new.rename(path)
    assert source.unchanged_since(fingerprint)  # what this run read was left whole
    with pytest.raises(RetryableError, match="replaced since this run first read it"):
        list(source.read(["id"], None, 10))
