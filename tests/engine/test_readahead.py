"""A large file read by a reader process: the same table, counters and errors as one read
in the run's thread, and a reader that dies, fails or is cancelled loses nothing.

Real CSV files into a real SQLite store, through the engine; the reader is a real child
process. ``READ_AHEAD_BYTES`` is lowered so that small files take the reader's path.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from plugins.sql_target import SqlTarget
from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint, Source, SourceCapabilities
from syncd.engine import Request, readahead
from syncd.engine.executor import RunExecutor
from syncd.engine.readahead import InThread, ReadAhead
from syncd.errors import RetryableError
from syncd.store import Store
from tests.conftest import BACKENDS
from tests.engine.test_data_safety import engine_for, errors, table

REPO = Path(__file__).resolve().parents[2]
#: every case a batch's screening handles: a repeated key (in its batch and across
#: batches), no key, a short line, a NUL byte, a quoted newline, a value holding the
#: packed batch's separator
CSV = ("id,title,artist\n"
       "1,One,A\n2,Two,B\n1,One again,A\n3,\"Three\nlines\",C\n"
       ",Keyless,D\n4,Four\n5,Fi\x00ve,E\n6,Six,F\n"
       "2,Two again,B\n7,Se\x1fven,G\n8,Eight,H\n9,Nine,I\n")


@pytest.fixture
def ahead(monkeypatch: pytest.MonkeyPatch) -> list[ReadAhead]:
    """Every file takes the reader's path; the readers made are listed."""
    made: list[ReadAhead] = []
    init = ReadAhead.__init__

    def spy(self: ReadAhead, *args: Any) -> None:
        init(self, *args)
        made.append(self)

    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", 0)
    monkeypatch.setattr(ReadAhead, "__init__", spy)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the reader imports this test's source
    return made


def outcome(store: Store, run_id: int) -> tuple[Any, ...]:
    run = store.get_run(run_id)
    return (run.status, run.items_processed, run.items_inserted, run.items_updated,
            run.items_unchanged, run.items_failed)


def _sync(store: Store, path: Path, tmp_path: Path, **extra: Any) -> tuple[int, Any]:
    engine = engine_for(store, path, tmp_path, **extra)
    return asyncio.run(engine.run(Request("music", "cli")))


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
@pytest.mark.parametrize("batch_rows", [3, 100])
async def test_a_file_read_ahead_ends_as_one_read_in_the_run_thread(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int) -> None:
    path = tmp_path / "music.csv"
    path.write_text(CSV, encoding="utf-8")
    results = []
    # the run's thread with every key indexed as read, as for a table not empty; then
    # the index made only once a key repeats across batches, in the run's thread and
    # in the reader process
    for threshold, indexed in ((10**12, True), (10**12, False), (0, False)):
        monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", threshold)
        monkeypatch.setattr(SqlTarget, "empty", lambda self, i=indexed: not i and self._empty)
        engine = engine_for(store, path, tmp_path, batch_rows=batch_rows)
        run_id, _ = await engine.run(Request("music", "cli"))
        results.append((table(store), outcome(store, run_id), sorted(errors(store, run_id))))
        store.db.execute_sql("DROP TABLE songs")
    indexed, here, there = results
    assert here == indexed
    assert there == indexed
    rows, counts, found = indexed
    assert rows["1"][0] == "One" and rows["2"][0] == "Two"  # the first of a key wins
    assert rows["3"][0] == "Three\nlines" and rows["7"][0] == "Se\x1fven"
    assert counts == ("completed", 12, 7, 0, 0, 5)
    assert sorted((e[1], e[2]) for e in found) == [
        ("duplicate_key", "line 11"), ("duplicate_key", "line 4"),
        ("field_count", "line 8"), ("missing_key", "line 7"), ("nul_byte", "line 9")]


def test_the_reader_is_a_child_process_that_is_gone_when_the_run_ends(
        store: Store, tmp_path: Path, ahead: list[ReadAhead]) -> None:
    path = tmp_path / "music.csv"
    path.write_text(CSV, encoding="utf-8")
    _, result = _sync(store, path, tmp_path)
    assert result.status == "completed"
    [reader] = ahead
    assert reader.process.pid != os.getpid()
    assert reader.process.returncode == 0  # it read to the end and exited by itself


@pytest.mark.parametrize(("text", "indexings", "repeated"), [
    (CSV, 1, {"line 4": "line 2", "line 11": "line 3"}),
    (CSV.replace("2,Two again", "12,Twelve"), 0, {"line 4": "line 2"})],
    ids=["a key repeated across batches", "only within a batch"])
@pytest.mark.parametrize("threshold", [0, 10**12], ids=["reader", "run's thread"])
def test_a_first_load_indexes_keys_only_once_one_repeats_across_batches(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
        indexings: int, repeated: dict[str, str], threshold: int) -> None:
    """Into an empty table each batch is screened alone; the write's counts show a key
    repeated in a later batch, and the run indexes the keys from then on."""
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", threshold)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    calls: list[int] = []
    index = RunExecutor._index_from_now_on

    def counted(self: RunExecutor, *args: Any) -> Any:
        calls.append(self.duplicates.count)
        return index(self, *args)

    monkeypatch.setattr(RunExecutor, "_index_from_now_on", counted)
    path = tmp_path / "music.csv"
    path.write_text(text, encoding="utf-8")
    run_id, result = _sync(store, path, tmp_path, batch_rows=3)
    assert result.status == "completed", result.error
    assert calls == [0] * indexings  # nothing indexed before
    found = {e[2]: e[3] for e in errors(store, run_id) if e[1] == "duplicate_key"}
    assert {item: message.partition("already seen at ")[2].partition(";")[0]
            for item, message in found.items()} == repeated, found
    assert outcome(store, run_id)[2] == 7 + (1 - indexings)  # inserted


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_a_key_another_writer_added_during_a_first_load_is_updated_not_refused(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table was empty when the run began, so the write taking a key for one the
    run wrote before is checked against the keys read so far: none repeats, and the
    row is written again, as an update."""
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", 10**12)  # the run's thread
    path = tmp_path / "music.csv"
    path.write_text("id,title,artist\n" + "".join(f"{i},Song {i},A\n" for i in range(1, 10)),
                    encoding="utf-8")
    each = InThread.__iter__

    def another_writer_after_a_batch(self: InThread) -> Iterator[Batch]:
        for n, batch in enumerate(each(self)):
            yield batch
            if n == 0:  # in the run's transaction, as if committed by someone else
                store.db.execute_sql("INSERT INTO songs (external_id, title, artist) "
                                     "VALUES ('5', 'Someone else', 'Z')")

    monkeypatch.setattr(InThread, "__iter__", another_writer_after_a_batch)
    run_id, result = _sync(store, path, tmp_path, batch_rows=3)
    assert result.status == "completed", result.error
    assert errors(store, run_id) == []
    assert outcome(store, run_id) == ("completed", 9, 8, 1, 0, 0)
    assert table(store) == {str(i): (f"Song {i}", "A", True) for i in range(1, 10)}


def test_a_reader_killed_mid_file_is_replaced_and_nothing_is_lost(
        store: Store, tmp_path: Path, ahead: list[ReadAhead],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "music.csv"
    rows = 20_000  # more than the pipe holds: the reader is still at work when killed
    path.write_text("id,title,artist\n" + "".join(f"{i},Song {i},A\n"
                                                  for i in range(1, rows + 1)),
                    encoding="utf-8")
    each = ReadAhead.__iter__

    def killed_after_a_batch(self: ReadAhead) -> Iterator[Batch]:
        for n, batch in enumerate(each(self)):
            yield batch
            if n == 1 and len(ahead) == 1:  # the first reader, after two batches
                os.kill(self.process.pid, signal.SIGKILL)

    monkeypatch.setattr(ReadAhead, "__iter__", killed_after_a_batch)
    run_id, result = _sync(store, path, tmp_path, batch_rows=500)
    assert result.status == "completed", result.error
    assert len(ahead) == 1  # the retry reads on in the run's thread: the table is no
    assert ahead[0].process.returncode == -signal.SIGKILL  # longer empty (preparer)
    assert table(store) == {str(i): (f"Song {i}", "A", True) for i in range(1, rows + 1)}
    assert outcome(store, run_id) == ("completed", rows, rows, 0, 0, 0)


class ExplodingSource(Source):
    """Two batches, then the error named by its path: ``retry`` once, else ``boom``."""

    name = "exploding"
    capabilities = SourceCapabilities(portable=True)

    @property
    def identifier(self) -> str:
        return str(self.options.path)

    def size(self) -> int:
        return 1

    def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
             batch_rows: int) -> Iterator[Batch]:
        start = int(checkpoint["n"]) if checkpoint else 0
        for n in range(start, 2):
            yield Batch([(str(n), f"t{n}", "a")], [f"item {n}"], {"n": n + 1})
        marker = Path(self.identifier)
        if marker.read_text() == "retry":
            marker.write_text("done")
            raise RetryableError("the source is busy")
        if marker.read_text() == "boom":
            raise RuntimeError("boom in the reader")
        yield Batch([("9", "t9", "a")], ["item 9"], {"n": 3})


class _Options(Source.Options):
    path: str = ""


ExplodingSource.Options = _Options


class _Plugin:
    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        registry.add_source(ExplodingSource)


def _exploding(store: Store, tmp_path: Path, text: str) -> tuple[int, Any]:
    marker = tmp_path / "marker"
    marker.write_text(text)
    engine = engine_for(store, marker, tmp_path, plugins=(_Plugin(),),
                        source={"type": "exploding", "path": str(marker)},
                        mapping={"external_id": "1", "title": "2", "artist": "3"})
    return asyncio.run(engine.run(Request("music", "cli")))


def test_an_error_in_the_reader_fails_the_run_with_its_message(
        store: Store, tmp_path: Path, ahead: list[ReadAhead]) -> None:
    _, result = _exploding(store, tmp_path, "boom")
    assert result.status == "failed"
    assert "boom in the reader" in result.error
    assert len(ahead) == 1 and ahead[0].process.returncode == 0
    assert set(table(store)) == {"0", "1"}  # what was read before it stays written


def test_a_retryable_error_in_the_reader_is_retried_from_the_checkpoint(
        store: Store, tmp_path: Path, ahead: list[ReadAhead]) -> None:
    run_id, result = _exploding(store, tmp_path, "retry")
    assert result.status == "completed", result.error
    assert len(ahead) == 1  # then read on in the run's thread
    assert set(table(store)) == {"0", "1", "9"}
    assert outcome(store, run_id)[1:3] == (3, 3)  # each record once


def test_a_cancelled_run_kills_its_reader(store: Store, tmp_path: Path,
                                          ahead: list[ReadAhead],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "music.csv"
    path.write_text("id,title,artist\n" + "".join(f"{i},Song {i},A\n" for i in range(1, 2001)),
                    encoding="utf-8")
    engine = engine_for(store, path, tmp_path, batch_rows=10)
    each = ReadAhead.__iter__

    def cancelled_after_a_batch(self: ReadAhead) -> Iterator[Batch]:
        for batch in each(self):
            [run] = store.unfinished_runs()
            engine.cancel(run.id)  # asked while the first batch is being written
            yield batch

    monkeypatch.setattr(ReadAhead, "__iter__", cancelled_after_a_batch)
    run_id, result = asyncio.run(engine.run(Request("music", "cli")))
    assert result.status == "cancelled"
    [reader] = ahead
    assert reader.process.returncode == -signal.SIGKILL  # stopped, not left reading
    assert outcome(store, run_id)[1] == 10  # the batch written before the cancel
