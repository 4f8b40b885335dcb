"""A run into a table its job's last run left as it is parses only the lines that
changed, and ends exactly as a run reading the whole file would: the same rows, the
same counts, the same errors on the same lines.

Each test syncs every version of a file with two jobs: ``music`` (lines snapshotted,
in ``state``) and ``twin`` (into a table of its own, its snapshot removed before every
run, so it always reads the whole file); then compares them. Real CSV files, real SQL
tables, through the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import Engine, Request, readahead, resolve_jobs
from syncd.engine.executor import RunExecutor, Stop
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd_builtin.csv_source import CsvSource
from tests.api_fixtures import write_rows
from tests.conftest import BACKENDS
from tests.engine.test_data_safety import config, errors
from tests.engine.test_unchanged import pause_after


class Twins:
    """``music`` and its always-reading ``twin``, on one file."""

    def __init__(self, store: Store, tmp_path: Path, path: Path, **extra: Any) -> None:
        self.store, self.tmp_path, self.path = store, tmp_path, path
        music = config(path, tmp_path, **extra)["jobs"]["music"]
        self.twin_path = path.with_name("twin.csv")  # the same bytes, told apart
        twin = {**music, "target": {**music["target"], "table": "songs_twin"},
                "source": {**music["source"], "path": str(self.twin_path)}}
        cfg = config(path, tmp_path)
        cfg["jobs"] = {"music": music, "twin": twin}
        _, registry = get_pluginmanager(load_entrypoints=True)
        self.engine = Engine(store, resolve_jobs(validate(cfg), registry, "test.toml"),
                             tmp_path / "state")

    async def sync(self, text: str | None = None, dry_run: bool = False) -> tuple[int, int]:
        """Write ``text`` to the file (if given), sync both jobs; their run ids."""
        if text is not None:
            self.path.write_text(text, encoding="utf-8", newline="")
        self.twin_path.write_bytes(self.path.read_bytes())
        ids = []
        for job in ("twin", "music"):
            if job == "twin":
                self.forget_twin()
            run_id, outcome = await self.engine.run(Request(job, "cli", dry_run=dry_run))
            assert outcome.status == "completed", outcome.error
            ids.append(run_id)
        twin, music = ids
        self.assert_alike(music, twin)
        return music, twin

    def forget_twin(self) -> None:
        for path in (self.tmp_path / "state" / "lines").glob("twin*"):
            path.unlink()

    def assert_alike(self, music: int, twin: int) -> None:
        a, b = self.store.get_run(music), self.store.get_run(twin)
        counts = ("processed", "inserted", "updated", "unchanged", "skipped", "failed")
        assert [getattr(a, f"items_{c}") for c in counts] == \
            [getattr(b, f"items_{c}") for c in counts], "the counts differ from a full read"
        assert errors(self.store, music) == errors(self.store, twin)
        assert rows(self.store, "songs") == rows(self.store, "songs_twin")


async def synced(store: Store, tmp_path: Path, text: str) -> Twins:
    """``music`` and its twin on ``tmp_path/music.csv``, synced once with ``text``."""
    twins = Twins(store, tmp_path, tmp_path / "music.csv")
    await twins.sync(text)
    return twins


def rows(store: Store, table: str) -> dict[str, tuple[Any, ...]]:
    cursor = store.db.execute_sql(f"SELECT external_id, title, artist, is_available, "
                                  f"content_hash FROM {table}")
    return {r[0]: tuple(r[1:]) for r in cursor.fetchall()}


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int | None]]:
    """What the ``music`` job's source parsed: ("all", None) for a whole read (or its
    keys, for ``on_missing``), ("lines", n) for n chosen lines (not the twin's)."""
    seen: list[tuple[str, int | None]] = []
    read, read_lines = CsvSource.read, CsvSource.read_lines

    def whole(self: CsvSource, *args: Any, **kwargs: Any) -> Any:
        if Path(self.identifier).name == "music.csv":
            seen.append(("all", None))
        return read(self, *args, **kwargs)

    def chosen(self: CsvSource, fields: Any, positions: Any, batch_rows: int) -> Any:
        if Path(self.identifier).name == "music.csv":
            seen.append(("lines", len(positions)))
        return read_lines(self, fields, positions, batch_rows)

    monkeypatch.setattr(CsvSource, "read", whole)
    monkeypatch.setattr(CsvSource, "read_lines", chosen)
    return seen


def lines(n: int, edit: dict[int, str] | None = None, title: str = "Song") -> str:
    """``id,title,artist`` with ``n`` records; ``edit`` replaces records by id."""
    body = [f"{i},{title} {i},Artist {i % 7}" for i in range(1, n + 1)]
    for i, line in (edit or {}).items():
        body[i - 1] = line
    return "id,title,artist\n" + "".join(f"{b}\n" for b in body)


async def test_a_file_recorded_as_already_ingested_between_two_runs_changes_nothing(
        store, tmp_path, parsed):
    """A watched folder's copy of a file already ingested is recorded as a completed run
    that read nothing: the run after it still reads only what changed, or nothing."""
    twins = Twins(store, tmp_path, tmp_path / "music.csv")
    first, _ = await twins.sync(lines(40))
    again = f"already ingested by run {first} (same sha256 as {twins.path})"
    await twins.engine.record_skipped("music", "watch", str(twins.path), again)
    parsed.clear()
    music, _ = await twins.sync(lines(40, {5: "5,Five,x"}))
    assert parsed == [("lines", 1)]
    await twins.engine.record_skipped("music", "watch", str(twins.path), again)
    parsed.clear()
    music, _ = await twins.sync()
    assert parsed == []  # the same content into the same table: not read again
    assert store.get_run(music).items_unchanged == 40


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_changed_lines_alone_are_read_and_the_run_ends_as_a_full_read(
        store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(40))
    parsed.clear()
    music, _ = await twins.sync(lines(40, {3: "3,Song Three,Artist 3", 30: "30,Thirty,x"}))
    assert ("lines", 2) in parsed and ("all", None) not in parsed
    run = store.get_run(music)
    assert (run.items_processed, run.items_updated, run.items_unchanged) == (40, 2, 38)

    parsed.clear()  # lines added at the end, and the last one without its line end
    await twins.sync(lines(44, {2: "2,Two,Artist 2"}).rstrip("\n"))
    assert ("lines", 7) in parsed  # 2, 3 and 30 as they were, and 4 more
    await twins.sync(lines(44, {2: "2,Two,Artist 2"}))  # the line end given back
    parsed.clear()
    await twins.sync(lines(20))  # lines removed at the end (on_missing = keep)
    assert ("lines", 1) in parsed


async def test_bad_lines_are_read_again_and_reported_on_their_lines(store, tmp_path, parsed):
    twins = Twins(store, tmp_path, tmp_path / "music.csv")
    bad = {5: "5,too,many,fields", 6: "", 9: "3,Again,Twice", 12: "12,Été,Ça"}
    await twins.sync(lines(30, bad))
    parsed.clear()
    music, _ = await twins.sync(lines(30, {**bad, 20: "20,Twenty,x"}))
    # the changed line, the bad one, the blank, the repeated key (and the line it
    # repeats, to tell which comes first): read again
    assert parsed == [("lines", 4), ("lines", 5)]
    assert [e[:3] for e in errors(store, music)] == [
        ("validation", "field_count", "line 6"), ("validation", "duplicate_key", "line 10")]
    parsed.clear()
    await twins.sync(lines(30, {6: "", 9: "9,Nine,x", 20: "20,Twenty,x"}))  # mended
    assert parsed == [("lines", 4)]  # lines 6, 7 (blank), 10 and 13


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_changed_line_repeating_an_unchanged_lines_key_has_that_line_read_too(
        store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(30))
    parsed.clear()
    later = await twins.sync(lines(30, {25: "7,Seven again,x"}))  # after the unchanged 7
    assert parsed == [("lines", 1), ("lines", 2)]  # its key, then with line 8
    assert errors(store, later[0])[0][:3] == ("validation", "duplicate_key", "line 26")
    parsed.clear()
    earlier = await twins.sync(lines(30, {25: "25,Song 25,Artist 4", 2: "28,Early,x"}))
    assert parsed == [("lines", 2), ("lines", 3)]
    assert errors(store, earlier[0])[0][:3] == ("validation", "duplicate_key", "line 29"), \
        "28 comes first on line 3 now: the unchanged line 29 repeats it"


async def test_keys_repeated_among_changed_lines_are_reported(store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(30))
    parsed.clear()
    music, _ = await twins.sync(lines(30, {4: "40,Forty,x", 20: "40,Forty again,y"}))
    assert ("lines", 2) in parsed and ("all", None) not in parsed
    assert [e[1:3] for e in errors(store, music)] == [("duplicate_key", "line 21")]


async def test_what_cannot_be_compared_line_by_line_is_read_whole(store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(40))
    parsed.clear()
    shifted = lines(40).replace("\n1,", "\n0,Zero,x\n1,", 1)  # every line after moved
    await twins.sync(shifted)
    assert ("lines", 41) not in parsed and ("all", None) in parsed
    parsed.clear()
    await twins.sync(shifted.replace("id,title,artist", "id,artist,title"))  # another layout
    assert all(p == ("all", None) for p in parsed)
    parsed.clear()
    quoted = shifted.replace("5,Song 5,", '5,"Song\n5",')  # a record over two lines
    await twins.sync(quoted)
    await twins.sync(quoted.replace("Song 9,", "Song Nine,"))
    assert all(p == ("all", None) for p in parsed)


async def test_a_torn_or_stale_snapshot_only_makes_the_run_read_whole(store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(30))
    [keys] = (tmp_path / "state" / "lines").glob("music-*.keys")
    keys.write_bytes(keys.read_bytes()[:-8] + b"\1" * 8)  # one digest changed
    parsed.clear()
    await twins.sync(lines(30, {3: "3,Three,x"}))
    assert parsed == [("all", None)]

    meta = tmp_path / "state" / "lines" / "music.json"
    saved = meta.read_text()
    await twins.sync(lines(30, {3: "3,Three,x", 4: "4,Four,x"}))
    meta.write_text(saved)  # an older run's snapshot (its arrays removed since)
    parsed.clear()
    await twins.sync(lines(30, {4: "4,Four,x"}))
    assert parsed == [("all", None)]


async def test_a_table_written_by_hand_since_makes_the_run_read_whole(store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(30))
    for table in ("songs", "songs_twin"):
        store.db.execute_sql(f"DELETE FROM {table} WHERE external_id = '8'")
    parsed.clear()
    music, _ = await twins.sync(lines(30, {3: "3,Three,x"}))
    assert parsed == [("all", None)]
    assert store.get_run(music).items_inserted == 1


async def test_a_dry_run_reads_only_changed_lines_and_leaves_the_snapshot(
        store, tmp_path, parsed):
    twins = await synced(store, tmp_path, lines(30))
    meta = (tmp_path / "state" / "lines" / "music.json").read_text()
    parsed.clear()
    await twins.sync(lines(30, {3: "3,Three,x"}), dry_run=True)
    assert ("lines", 1) in parsed
    assert (tmp_path / "state" / "lines" / "music.json").read_text() == meta
    await twins.sync()  # and then for real
    assert rows(store, "songs")["3"][0] == "Three"


async def test_a_run_paused_while_reading_changed_lines_resumes_to_the_same_end(
        store, tmp_path, parsed):
    path = tmp_path / "music.csv"
    twins = Twins(store, tmp_path, path, batch_rows=2)
    await twins.sync(lines(40))
    path.write_text(lines(40, {i: f"{i},Changed {i},x" for i in (3, 9, 15, 21, 33)}),
                    encoding="utf-8")
    plan = twins.engine.plans["music"]
    run_id, paused = pause_after(store, plan, tmp_path / "state", 10)
    assert paused.status == "pending"
    checkpoint = json.loads(store.get_run(run_id).checkpoint or "{}")
    assert 0 < checkpoint["line"] < 41
    resumed = RunExecutor(store, plan, run_id, plan.make_source(), Stop(),
                          state_dir=tmp_path / "state").execute()
    assert resumed.status == "completed"
    assert parsed[-2:] == [("lines", 5), ("all", None)]  # resumed: read on from there
    twins.forget_twin()
    twins.twin_path.write_bytes(path.read_bytes())
    twin, outcome = await twins.engine.run(Request("twin", "cli"))
    assert outcome.status == "completed"
    twins.assert_alike(run_id, twin)


async def test_a_first_load_read_by_a_reader_process_leaves_the_snapshot(
        store, tmp_path, parsed, monkeypatch):
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", 0)  # every file read ahead
    twins = Twins(store, tmp_path, tmp_path / "music.csv", batch_rows=7)
    await twins.sync(lines(200, {50: "50,too,many,fields", 120: "7,Again,x"}))
    parsed.clear()
    await twins.sync(lines(200, {50: "50,too,many,fields", 120: "7,Again,x",
                                 130: "130,Changed,x"}))
    assert ("lines", 3) in parsed and ("all", None) not in parsed


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
@pytest.mark.parametrize("on_missing", ["mark_unavailable", "delete"])
async def test_on_missing_reads_changed_lines_while_no_key_leaves_the_file(
        store, tmp_path, parsed, on_missing):
    twins = Twins(store, tmp_path, tmp_path / "music.csv", on_missing=on_missing,
                  max_missing="100%")
    await twins.sync(lines(30))
    parsed.clear()
    await twins.sync(lines(30, {3: "3,Three,x", 9: "29,Moved,y", 29: "9,Moved,z"}))
    assert parsed == [("lines", 3)], "keys moved between changed lines: none left"
    parsed.clear()
    gone, _ = await twins.sync(lines(30, {3: "3,Three,x", 9: "31,New,y", 29: "9,Moved,z"}))
    assert parsed[:2] == [("lines", 1), ("all", None)], "29 left: read whole to remove it"
    assert store.get_run(gone).items_missing == 1
    parsed.clear()
    await twins.sync(lines(25, {3: "3,Three,x", 9: "31,New,y"}))  # cut at the end
    assert ("all", None) in parsed
    parsed.clear()
    await twins.sync(lines(25, {3: "3,Three,x", 9: "31,New,y", 12: "12,a,b,c"}))
    await twins.sync(lines(25, {3: "3,Three,x", 9: "31,New,y", 12: "12,a,b,c",
                                15: "15,Fifteen,x"}))  # after a run with a failed record
    # line 13 fails (its key 12 is no longer told: read whole), and the next run,
    # after one with a failed record, reads whole too
    assert parsed == [("lines", 1), ("all", None), ("all", None)]
    assert rows(store, "songs")["12"][2] in (True, 1), "a failed record is never removed"


def test_the_snapshot_of_a_large_file_is_flat_in_memory(tmp_path):
    """Digests stream in blocks: a million lines never make a million-entry list."""
    path = write_rows(tmp_path / "big.csv", 300_000)
    digests = CsvSource(CsvSource.Options(), str(path)).line_digests()
    assert digests is not None and digests.first_line == 2
    sizes = [len(block) for block in digests.blocks if block is not None]
    assert sum(sizes) == 300_000 and max(sizes) < 300_000


async def test_a_snapshot_that_cannot_be_written_leaves_the_runs_as_they_were(
        store, tmp_path, parsed):
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "lines").write_text("not a folder")  # nowhere to write one
    twins = await synced(store, tmp_path, lines(30))
    await twins.sync(lines(30, {3: "3,Three,x"}))
    assert all(p == ("all", None) for p in parsed)

