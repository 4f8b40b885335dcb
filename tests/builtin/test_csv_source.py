"""The csv source on real files: parsing, bad rows with their lines, and resuming."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import syncd_builtin.csv_source as csv_source
from syncd.adapters import Batch, Checkpoint, ItemError
from syncd.errors import JobError, SourceError
from syncd.plugins import get_pluginmanager
from syncd_builtin import adapters
from syncd_builtin.csv_source import CsvSource


@pytest.fixture(autouse=True)
def _restore_field_size_limit() -> Iterator[None]:
    """A read sets csv's process-wide field limit; leave other tests the default."""
    limit = csv.field_size_limit()
    yield
    csv.field_size_limit(limit)


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def read(
    path: Path,
    fields: Sequence[str],
    checkpoint: Checkpoint | None = None,
    batch_rows: int = 1000,
    **options: Any,
) -> list[Batch]:
    source = CsvSource(CsvSource.Options(**options), str(path))
    return list(source.read(fields, checkpoint, batch_rows))


def rows(batches: list[Batch]) -> list[tuple[Any, ...]]:
    return [row for batch in batches for row in batch.rows]


def items(batches: list[Batch]) -> list[str]:
    return [item for batch in batches for item in batch.items]


def errors(batches: list[Batch]) -> list[ItemError]:
    return [error for batch in batches for error in batch.errors]


def field_count(line: int, expected: int, got: int) -> ItemError:
    message = f"expected {expected} fields, got {got}"
    return ItemError("validation", "field_count", message, f"line {line}")


# --- reading ---------------------------------------------------------------


def test_rows_items_and_final_checkpoint(tmp_path: Path) -> None:
    data = "id,name,genre\n1,a,rock\n2,b,pop\n"
    batches = read(write(tmp_path, data), ["genre", "id"])
    assert rows(batches) == [("rock", "1"), ("pop", "2")]
    assert items(batches) == ["line 2", "line 3"]
    assert errors(batches) == []
    assert len(batches) == 1
    assert batches[0].checkpoint == {"offset": len(data), "line": 3}
    assert batches[0].progress == len(data)


def test_one_field_gives_one_tuples(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id,name\n1,a\n2,b\n"), ["name"])
    assert rows(batches) == [("a",), ("b",)]


def test_no_fields_gives_empty_rows(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id\n1\n2\n"), [])
    assert rows(batches) == [(), ()]
    assert items(batches) == ["line 2", "line 3"]


def test_header_names_are_stripped(tmp_path: Path) -> None:
    batches = read(write(tmp_path, " id , name\n1,a\n"), ["name", "id"])
    assert rows(batches) == [("a", "1")]


def test_values_are_not_validated(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id,name\n,\n1, \n"), ["id", "name"])
    assert rows(batches) == [("", ""), ("1", " ")]


def test_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    data = 'id,text\n1,"one\ntwo"\n2,"a\r\nb\r\nc"\n3,plain\n4\n5,"x"\n'
    batches = read(write(tmp_path, data), ["id", "text"])
    assert rows(batches) == [("1", "one\ntwo"), ("2", "a\r\nb\r\nc"), ("3", "plain"), ("5", "x")]
    assert items(batches) == ["line 2", "line 4", "line 7", "line 9"]
    assert errors(batches) == [field_count(8, 2, 1)]
    assert batches[-1].checkpoint == {"offset": len(data), "line": 9}


def test_embedded_quotes_and_delimiters(tmp_path: Path) -> None:
    data = 'id,text\n1,"say ""hi"", then go"\n2,""""\n'
    batches = read(write(tmp_path, data), ["id", "text"])
    assert rows(batches) == [("1", 'say "hi", then go'), ("2", '"')]


def test_utf8_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfid,name\n1,caf\xc3\xa9\n"
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [("1", "café")]
    assert batches[-1].checkpoint == {"offset": len(data), "line": 2}


def test_explicit_utf8_skips_the_bom_too(tmp_path: Path) -> None:
    batches = read(write(tmp_path, b"\xef\xbb\xbfid\n1\n"), ["id"], encoding="utf-8")
    assert rows(batches) == [("1",)]


def test_crlf(tmp_path: Path) -> None:
    data = "id,name\r\n1,a\r\n2,b\r\n"
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [("1", "a"), ("2", "b")]
    assert batches[-1].checkpoint == {"offset": len(data), "line": 3}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("id;name;price\n1;a;1,50\n2;b, c;2,50\n", [("1", "a", "1,50"), ("2", "b, c", "2,50")]),
        ("id\tname\tprice\n1\ta;b\t1.5\n2\tc\t2\n", [("1", "a;b", "1.5"), ("2", "c", "2")]),
        ("id|name|price\n1|a|1\n", [("1", "a", "1")]),
        (
            "id;name;price\n1;a, b, c, d;1\n2;e, f, g, h;2\n3;i, j, k, l;3\n4;m;4\n",
            [
                ("1", "a, b, c, d", "1"),
                ("2", "e, f, g, h", "2"),
                ("3", "i, j, k, l", "3"),
                ("4", "m", "4"),
            ],
        ),
        ('id,name,price\n1,"a;b;c;d",1\n2,x,2\n', [("1", "a;b;c;d", "1"), ("2", "x", "2")]),
    ],
    ids=["semicolon", "tab", "pipe", "semicolon-with-comma-lists", "comma-with-quoted-semicolons"],
)
def test_delimiter_is_sniffed(tmp_path: Path, data: str, expected: list[tuple[str, ...]]) -> None:
    assert rows(read(write(tmp_path, data), ["id", "name", "price"])) == expected


def test_one_column_file_falls_back_to_comma(tmp_path: Path) -> None:
    assert rows(read(write(tmp_path, "id\n1\n2\n"), ["id"])) == [("1",), ("2",)]


@pytest.mark.parametrize(("option", "char"), [("\\t", "\t"), (";", ";"), ("\t", "\t")])
def test_explicit_delimiter(tmp_path: Path, option: str, char: str) -> None:
    data = f"id{char}name\n1{char}a,b\n"
    assert rows(read(write(tmp_path, data), ["name"], delimiter=option)) == [("a,b",)]


def test_cp1252_is_detected(tmp_path: Path) -> None:
    text = "naïve \u2013 \u201cquoted\u201d"  # an en dash and curly quotes: cp1252, not latin-1
    data = f"id,name\n1,café\n2,{text}\n".encode("cp1252")
    batches = read(write(tmp_path, data), ["id", "name"])
    assert rows(batches) == [("1", "café"), ("2", text)]
    assert errors(batches) == []


def test_explicit_encoding(tmp_path: Path) -> None:
    data = "id,name\n1,café\n".encode("latin-1")
    assert rows(read(write(tmp_path, data), ["name"], encoding="latin-1")) == [("café",)]


def test_utf8_char_cut_by_the_sample_is_still_utf8(tmp_path: Path) -> None:
    head = b"id,name\n"
    filler = b"1," + b"a" * (csv_source.SAMPLE_BYTES - len(head) - 6) + b"\n"
    data = head + filler + "2,é\n".encode()
    assert data[csv_source.SAMPLE_BYTES - 1 : csv_source.SAMPLE_BYTES + 1] == "é".encode()
    batches = read(write(tmp_path, data), ["name"])
    assert rows(batches)[-1] == ("é",)
    assert errors(batches) == []


def test_undecodable_row_is_an_error_on_its_line(tmp_path: Path) -> None:
    data = b"id,name\n1,a\n2,b\xffc\n3,d\n"
    batches = read(write(tmp_path, data), ["id", "name"], encoding="utf-8")
    assert rows(batches) == [("1", "a"), ("3", "d")]
    assert items(batches) == ["line 2", "line 4"]
    [error] = errors(batches)
    assert (error.type, error.code, error.item) == ("parsing", "encoding", "line 3")
    assert "0xff" in error.message


def test_a_cp1252_row_after_the_sample_in_an_auto_utf8_file_is_decoded_alone(
        tmp_path: Path) -> None:
    good = "".join(f"{i},é{i}\n" for i in range(2, 20_000)).encode()
    assert len(good) > csv_source.SAMPLE_BYTES
    data = b"id,name\n" + good + b"20000,\xe9\n20001,ok\n"
    batches = read(write(tmp_path, data), ["id", "name"], batch_rows=7000)
    assert rows(batches)[0] == ("2", "é2")
    assert rows(batches)[-2:] == [("20000", "é"), ("20001", "ok")]
    assert len(rows(batches)) == 20_000
    assert errors(batches) == []


def test_undecodable_line_inside_a_quoted_record(tmp_path: Path) -> None:
    data = b'id,text\n1,"a\n\xff"\n2,b\n'
    batches = read(write(tmp_path, data), ["id", "text"], encoding="utf-8")
    assert rows(batches) == [("2", "b")]
    assert items(batches) == ["line 4"]
    assert [(e.code, e.item) for e in errors(batches)] == [("encoding", "line 2")]


def test_empty_lines_are_ignored(tmp_path: Path) -> None:
    data = "\nid,name\n\n1,a\r\n\r\n\n2,b\n\n"
    batches = read(write(tmp_path, data), ["id", "name"], batch_rows=1)
    assert rows(batches) == [("1", "a"), ("2", "b")]
    assert items(batches) == ["line 4", "line 7"]
    assert errors(batches) == []
    assert batches[-1].checkpoint == {"offset": len(data), "line": 8}


def test_extra_and_missing_fields(tmp_path: Path) -> None:
    data = "id,name,genre\n1,a,rock\n2,b,pop,extra\n3,c\n4,d,jazz\n"
    batches = read(write(tmp_path, data), ["id"])
    assert rows(batches) == [("1",), ("4",)]
    assert items(batches) == ["line 2", "line 5"]
    assert errors(batches) == [field_count(3, 3, 4), field_count(4, 3, 2)]


def test_nul_bytes_are_data(tmp_path: Path) -> None:
    batches = read(write(tmp_path, b"id,name\n1,a\x00b\n2,c\n"), ["id", "name"])
    assert rows(batches) == [("1", "a\x00b"), ("2", "c")]


def test_200kb_field_is_accepted_by_default(tmp_path: Path) -> None:
    big = "x" * 200_000
    batches = read(write(tmp_path, f'id,text\n1,{big}\n2,"{big}"\n3,s\n'), ["id", "text"])
    assert rows(batches) == [("1", big), ("2", big), ("3", "s")]


def test_field_over_the_limit_fails_its_row_only(tmp_path: Path) -> None:
    data = f"id,text\n1,a\n2,{'x' * 3000}\n3,b\n"
    batches = read(write(tmp_path, data), ["id", "text"], max_field_kb=2)
    assert rows(batches) == [("1", "a"), ("3", "b")]
    assert items(batches) == ["line 2", "line 4"]
    [error] = errors(batches)
    assert (error.type, error.code, error.item) == ("parsing", "csv", "line 3")
    assert "field larger than field limit (2048)" in error.message


def test_without_header_columns_name_the_fields(tmp_path: Path) -> None:
    data = "1,a\n2,b,extra\n3,c\n"
    batches = read(write(tmp_path, data), ["name", "id"], has_header=False, columns=["id", "name"])
    assert rows(batches) == [("a", "1"), ("c", "3")]
    assert items(batches) == ["line 1", "line 3"]
    assert errors(batches) == [field_count(2, 2, 3)]


def test_without_header_fields_are_numbered(tmp_path: Path) -> None:
    data = "\n1,a,x\n2,b\n3,c,z\n"
    batches = read(write(tmp_path, data), ["3", "1"], has_header=False)
    assert rows(batches) == [("x", "1"), ("z", "3")]
    assert items(batches) == ["line 2", "line 4"]
    assert errors(batches) == [field_count(3, 3, 2)]


def test_missing_column_is_a_job_error_before_any_batch(tmp_path: Path) -> None:
    source = CsvSource(CsvSource.Options(path=str(write(tmp_path, "id,name\n1,a\n"))))
    with pytest.raises(JobError) as info:
        next(source.read(["id", "title"], None, 10))
    assert str(info.value) == f"column 'title' is not in the header of {source.identifier}"
    assert info.value.hint == "columns: id, name"


def test_missing_numbered_column_without_header(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="column '3' is not in the columns of ") as info:
        read(write(tmp_path, "1,a\n"), ["3"], has_header=False)
    assert info.value.hint == "columns: 1, 2"


def test_ambiguous_column_is_a_job_error(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name,name\n1,a,b\n")
    with pytest.raises(JobError, match="'name' appears 2 times in the header"):
        read(path, ["name"])
    assert rows(read(path, ["id"])) == [("1",)]


@pytest.mark.parametrize("data", ["", "\n\r\n\n"], ids=["empty", "blank-lines"])
def test_a_file_without_even_a_header_cannot_be_read(tmp_path: Path, data: str) -> None:
    with pytest.raises(SourceError, match=r"is empty|has no header"):
        read(write(tmp_path, data), ["id", "title"])


def test_header_only_file_gives_one_empty_batch(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id,name\n"), ["id"])
    assert [(b.rows, b.checkpoint) for b in batches] == [([], {"offset": 8, "line": 1})]


# --- batches and checkpoints ------------------------------------------------


def test_batches_count_good_and_bad_records(tmp_path: Path) -> None:
    data = "id,name\n1,a\n2\n3,c\n\n4,d\n5,e\n6,f\n7,g\n"
    batches = read(write(tmp_path, data), ["id"], batch_rows=3)
    assert [len(b.rows) + len(b.errors) for b in batches] == [3, 3, 1]
    assert [b.rows for b in batches] == [[("1",), ("3",)], [("4",), ("5",), ("6",)], [("7",)]]
    assert [b.checkpoint for b in batches] == [
        {"offset": data.index("\n\n4,d") + 1, "line": 4},
        {"offset": data.index("7,g"), "line": 8},
        {"offset": len(data), "line": 9},
    ]
    assert [b.progress for b in batches] == [b.checkpoint["offset"] for b in batches]


def test_no_empty_batch_after_a_full_last_one(tmp_path: Path) -> None:
    batches = read(write(tmp_path, "id\n1\n2\n3\n4\n"), ["id"], batch_rows=2)
    assert [len(b.rows) for b in batches] == [2, 2]


SAMPLES = {
    "bom-crlf-quoted": (
        b'\xef\xbb\xbfid,text\r\n1,a\r\n\r\n2,"multi\r\nline"\r\n3\r\n4,"q""q"\r\n'
        + b"".join(b"%d,row %d\r\n" % (i, i) for i in range(5, 30))
        + b'30,"x\r\ny\r\nz"\r\n31,last',
        {},
    ),
    "bad-bytes-utf8": (
        b'id,text\n1,\xff\n2,b\n3,"c\n\xfe"\n4,d\n5,e,f\n6,\xc3\xa9\n7,g\n8,h\n9,i\n',
        {"encoding": "utf-8"},
    ),
    "cp1252-no-header": (
        "".join(f"{i},café {i}\n" for i in range(1, 25)).encode("cp1252"),
        {"has_header": False, "columns": ["id", "text"]},
    ),
    "oversized-field": (
        b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"y" * (i * 150)) for i in range(1, 20)),
        {"max_field_kb": 1},
    ),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_resuming_from_any_checkpoint_reads_exactly_the_rest(tmp_path: Path, name: str) -> None:
    data, options = SAMPLES[name]
    path = write(tmp_path, data)
    full = read(path, ["text", "id"], batch_rows=2, **options)
    assert len(full) >= 4
    for i, batch in enumerate(full):
        rest = read(path, ["text", "id"], checkpoint=batch.checkpoint, batch_rows=2, **options)
        assert rows(rest) == rows(full[i + 1 :])
        assert items(rest) == items(full[i + 1 :])
        assert errors(rest) == errors(full[i + 1 :])
        assert rest[-1].checkpoint == full[-1].checkpoint
    # with any batch size, the whole file reads the same
    assert rows(read(path, ["text", "id"], batch_rows=1, **options)) == rows(full)
    assert items(read(path, ["text", "id"], batch_rows=1, **options)) == items(full)


def test_resumed_lines_continue_from_the_checkpoint(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,text\n1,"a\nb"\n2,c\n3\n4,d\n')
    first = read(path, ["id"], batch_rows=1)[0]
    assert first.checkpoint == {"offset": 16, "line": 3}
    rest = read(path, ["id"], checkpoint=first.checkpoint, batch_rows=10)
    assert items(rest) == ["line 4", "line 6"]
    assert errors(rest) == [field_count(5, 2, 1)]


def test_bad_checkpoint_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, "id\n1\n")
    with pytest.raises(SourceError, match="cannot resume"):
        read(path, ["id"], checkpoint={"page": 3})


# --- the file ---------------------------------------------------------------


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    source = CsvSource(CsvSource.Options(path=str(path)))
    message = f"cannot read {path}: No such file or directory"
    for call in (source.fingerprint, source.size, lambda: next(source.read(["id"], None, 1))):
        with pytest.raises(SourceError) as info:
            call()
        assert str(info.value) == message


def test_directory_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"cannot read {tmp_path}: Is a directory"):
        read(tmp_path, ["id"])


def test_no_path_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no file"):
        CsvSource(CsvSource.Options())


def test_identifier_overrides_path_and_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "id\n1\n", "given.csv")
    source = CsvSource(CsvSource.Options(path="/elsewhere/x.csv"), "sub/../given.csv")
    assert source.identifier == str(tmp_path.resolve() / "given.csv")
    assert source.size() == 5


def test_fingerprint_follows_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, "id\n1\n")
    source = CsvSource(CsvSource.Options(path=str(path)))
    before = source.fingerprint()
    stat = path.stat()
    assert before == {
        "size": 5,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": "7cde7fb64fd82bd152710cf238e017b9ab46c0592483edc067ba4f6c75fac108",
    }
    assert source.fingerprint() == before
    path.write_bytes(b"id\n2\n")  # same size, same mtime: only the digest tells
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = source.fingerprint()
    assert after["size"] == before["size"] and after["mtime_ns"] == before["mtime_ns"]
    assert after["sha256"] != before["sha256"]


def test_fingerprint_hashes_files_larger_than_a_chunk(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 * 1024 * 1024 + 7)  # more than any read buffer
    path = write(tmp_path, data)
    fingerprint = CsvSource(CsvSource.Options(path=str(path))).fingerprint()
    assert fingerprint["sha256"] == hashlib.sha256(data).hexdigest()


# --- options and registration -----------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": ",;"}, "one character"),
        ({"delimiter": '"'}, "one character"),
        ({"encoding": "utf-16"}, "not ASCII-compatible"),
        ({"encoding": "klingon"}, "unknown encoding"),
        ({"encoding": "rot13"}, "unknown encoding"),
        ({"columns": ["a", "b"]}, "set has_header = false"),
        ({"has_header": False, "columns": ["a", "a"]}, "a name twice"),
        ({"max_field_kb": 0}, "greater than or equal to 1"),
        ({"delimter": ","}, "Extra inputs are not permitted"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CsvSource.Options(**options)


def test_options_are_frozen_and_tab_is_spelt_backslash_t() -> None:
    options = CsvSource.Options(delimiter="\\t")
    assert options.delimiter == "\t"
    with pytest.raises(ValidationError):
        options.delimiter = ","  # type: ignore[misc]


def test_registered_as_csv() -> None:
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(adapters.csv,))
    assert registry.sources == {"csv": CsvSource}
