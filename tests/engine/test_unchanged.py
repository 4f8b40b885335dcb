"""A run of the content its job last synced, into a table nothing wrote since, reads
nothing; anything that could make a read write something makes the run read.

Real CSV files into real SQL tables (SQLite and the servers), through the engine.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from syncd.adapters import TargetSchema
from syncd.config import validate
from syncd.engine import Engine, Request, resolve_jobs
from syncd.engine.executor import Progress, RunExecutor, Stop
from syncd.engine.runs import Outcome
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.store.sql_session import StoreSqlSession
from syncd.testing.contracts.base import context
from syncd_builtin.csv_source import CsvSource
from syncd_builtin.sql_target import SqlTarget
from tests.api_fixtures import write_rows
from tests.conftest import BACKENDS
from tests.engine.test_data_safety import config, engine_for, errors, table


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the csv source was asked to read, in order."""
    seen: list[str] = []
    read = CsvSource.read

    def counted(self: CsvSource, *args: Any, **kwargs: Any) -> Any:
        seen.append(Path(self.identifier).name)
        return read(self, *args, **kwargs)

    monkeypatch.setattr(CsvSource, "read", counted)
    return seen


def songs(n: int, title: str = "Song") -> dict[str, tuple[str, str, bool]]:
    return {str(i): (f"{title} {i}", f"Artist {i % 97}", True) for i in range(1, n + 1)}


def engine_with(store: Store, tmp_path: Path, path: Path, **jobs: dict[str, Any]) -> Engine:
    """Job ``music`` on ``path`` as in ``test_data_safety``, and ``jobs`` beside it."""
    cfg = config(path, tmp_path)
    cfg["jobs"].update(jobs)
    _, registry = get_pluginmanager(load_entrypoints=True)
    return Engine(store, resolve_jobs(validate(cfg), registry, "test.toml"), tmp_path / "state")


async def sync(engine: Engine, path: Path | None = None, dry_run: bool = False,
               job: str = "music") -> int:
    run_id, outcome = await engine.run(Request(
        job, "cli", identifier=str(path) if path else None, dry_run=dry_run))
    assert outcome.status == "completed", outcome.error
    return run_id


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_the_same_content_again_completes_without_reading(store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path)
    first = await sync(engine)
    assert reads == ["music.csv"]

    again = await sync(engine)
    copy = shutil.copy(path, tmp_path / "music-copy.csv")  # another name, the same bytes
    third = await sync(engine, Path(copy))
    dry = await sync(engine, dry_run=True)
    assert reads == ["music.csv"]
    for run_id in (again, third, dry):
        run = store.get_run(run_id)
        assert (run.items_processed, run.items_unchanged, run.items_inserted) == (10, 10, 0)
        assert run.checkpoint == store.get_run(first).checkpoint
    assert table(store) == songs(10)


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_row_deleted_by_hand_is_written_again(store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path)
    await sync(engine)
    store.db.execute_sql("DELETE FROM songs WHERE external_id = '3'")

    run = store.get_run(await sync(engine))
    assert reads == ["music.csv", "music.csv"]
    assert (run.items_inserted, run.items_unchanged) == (1, 9)
    assert table(store) == songs(10)


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_another_jobs_write_into_the_table_makes_the_run_read(store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path)
    await sync(engine)
    other = tmp_path / "other.csv"
    other.write_text("id,title,artist\n3,Covered 3,Someone\n", encoding="utf-8")
    covers = config(other, tmp_path)["jobs"]["music"]  # the same table, from another file
    engine = engine_with(store, tmp_path, path, covers=covers)
    await sync(engine, job="covers")
    assert table(store)["3"] == ("Covered 3", "Someone", True)

    run = store.get_run(await sync(engine))
    assert reads == ["music.csv", "other.csv", "music.csv"]
    assert (run.items_updated, run.items_unchanged) == (1, 9)
    assert table(store) == songs(10)


async def test_a_changed_job_reads_the_same_file(store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 10)
    await sync(engine_for(store, path, tmp_path))
    job = config(path, tmp_path, constants={"artist": "Various"})["jobs"]["music"]
    del job["mapping"]["artist"]
    engine = engine_with(store, tmp_path, path, music=job)

    run = store.get_run(await sync(engine))
    assert reads == ["music.csv", "music.csv"]
    assert run.items_updated == 10
    assert {r[1] for r in table(store).values()} == {"Various"}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_bad_lines_are_reported_again_without_reading(store, tmp_path, reads):
    path = tmp_path / "music.csv"
    path.write_text("id,title,artist\n1,Song 1,Artist 1\n2,too,many,fields\n1,Again,Twice\n",
                    encoding="utf-8")
    engine = engine_for(store, path, tmp_path)
    first, again = await sync(engine), await sync(engine)

    assert reads == ["music.csv"]
    assert [e[:4] for e in errors(store, again)] == [e[:4] for e in errors(store, first)]
    assert [e[1] for e in errors(store, again)] == ["field_count", "duplicate_key"]
    run = store.get_run(again)
    assert (run.items_processed, run.items_unchanged, run.items_failed) == (3, 1, 2)


@pytest.mark.parametrize("database_url", BACKENDS[1:], indirect=True)
async def test_a_row_the_database_refused_is_written_once_the_table_takes_it(
        store, tmp_path, reads):
    serial = "SERIAL" if store.dialect == "postgres" else "INTEGER AUTO_INCREMENT"
    store.db.execute_sql(f"CREATE TABLE songs (id {serial} PRIMARY KEY, "
                         "external_id VARCHAR(191), title VARCHAR(7), artist TEXT)")
    path = write_rows(tmp_path / "music.csv", 10)  # "Song 10" fits, the rest…
    path.write_text(path.read_text(encoding="utf-8").replace("Song 3,", "Song Three,"),
                    encoding="utf-8")
    engine = engine_for(store, path, tmp_path)
    first = store.get_run(await sync(engine))
    assert (first.items_inserted, first.items_failed) == (9, 1)
    assert errors(store, first.id)[0][0] == "target"

    widen = "TYPE TEXT" if store.dialect == "postgres" else "TEXT"
    store.db.execute_sql(f"ALTER TABLE songs {'ALTER' if serial == 'SERIAL' else 'MODIFY'} "
                         f"COLUMN title {widen}")
    run = store.get_run(await sync(engine))
    assert reads == ["music.csv", "music.csv"]
    assert (run.items_inserted, run.items_unchanged, run.items_failed) == (1, 9, 0)
    assert table(store)["3"][0] == "Song Three"


async def test_what_a_failed_run_wrote_is_undone_by_the_next_read(store: Store, tmp_path,
                                                                  reads):
    path = write_rows(tmp_path / "music.csv", 40)
    original = path.read_bytes()
    engine = engine_for(store, path, tmp_path, batch_rows=5)
    await sync(engine)
    path.write_bytes(original.replace(b"Song", b"Demo"))
    truncated = threading.Event()

    def truncate(progress: Progress) -> None:  # once the first batches are written
        if not truncated.is_set():
            truncated.set()
            with path.open("r+b") as f:
                f.truncate(path.stat().st_size // 2)

    plan = engine.plans["music"]
    source = plan.make_source()
    run_id = store.create_run(job="music", trigger="cli", source_type="csv",
                              source_identifier=source.identifier)
    outcome = RunExecutor(store, plan, run_id, source, Stop(), on_progress=truncate,
                          state_dir=tmp_path / "state").execute()
    assert outcome.status == "failed" and "changed while it was read" in (outcome.error or "")
    assert any(title.startswith("Demo") for title, _, _ in table(store).values())

    path.write_bytes(original)  # the content of the last completed run, exactly
    run = store.get_run(await sync(engine))
    assert reads == ["music.csv"] * 3
    assert run.items_updated > 0
    assert table(store) == songs(40)


# -- a revision is told only when the target alone wrote since it opened ---------------


def open_songs(store: Store, tmp_path: Path, job: str = "music") -> SqlTarget:
    target = SqlTarget(SqlTarget.Options(table="songs", key=["external_id"]))
    schema = TargetSchema(job=job, columns=("external_id", "title"), key=("external_id",),
                          constants={}, source_type="csv", source_identifier="music.csv")
    target.open(schema, context(tmp_path, sql=StoreSqlSession(store.db, store.dialect, job)))
    return target


def write_songs(store: Store, target: SqlTarget, rows: list[tuple[str, str]]) -> None:
    with store.atomic():
        target.write(rows, [f"line {i}" for i in range(2, len(rows) + 2)])


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_a_table_another_job_wrote_since_it_opened_has_no_revision(store, tmp_path):
    target = open_songs(store, tmp_path)
    write_songs(store, target, [("1", "a"), ("2", "b"), ("3", "c")])
    with store.atomic():
        target.reconcile(iter([("1",), ("2",)]), "delete")
    assert target.revision() is not None, "its own writes left no revision"

    other = open_songs(store, tmp_path, job="covers")
    write_songs(store, other, [("1", "covered")])
    other.close()
    assert target.revision() is None, "another job's write went unnoticed"
    target.close()


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
@pytest.mark.parametrize("by_hand", ["INSERT INTO songs (external_id, title) VALUES ('9', 'x')",
                                     "DELETE FROM songs WHERE external_id = '2'"])
def test_a_row_inserted_or_deleted_by_hand_changes_the_revision(store, tmp_path, by_hand):
    target = open_songs(store, tmp_path)
    write_songs(store, target, [("1", "a"), ("2", "b"), ("3", "c")])
    target.close()
    before = open_songs(store, tmp_path).revision()
    store.db.execute_sql(by_hand)
    assert open_songs(store, tmp_path).revision() != before


def test_a_run_that_touched_little_of_a_large_table_does_not_count_it(store, tmp_path):
    """Counting scans the table on a server: not for a small file into a large table."""
    other = open_songs(store, tmp_path, job="archive")
    write_songs(store, other, [(str(i), "old") for i in range(100, 160)])
    other.close()
    target = open_songs(store, tmp_path)
    write_songs(store, target, [("1", "a"), ("2", "b")])  # 2 of 62 rows: under a twentieth
    assert target.revision() is None
    write_songs(store, target, [("3", "c"), ("4", "d")])  # 4 of 64: a sixteenth
    assert target.revision() is not None
    target.close()


async def test_a_run_another_job_wrote_beside_leaves_the_next_run_to_read(
        store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 12)
    engine = engine_for(store, path, tmp_path, batch_rows=3)
    plan = engine.plans["music"]

    def another_job_writes(progress: Progress) -> None:
        if progress.processed == 3:
            other = open_songs(store, tmp_path, job="covers")
            other.write([("3", "covered")], ["line 2"])
            other.close()

    source = plan.make_source()
    run_id = store.create_run(job="music", trigger="cli", source_type="csv",
                              source_identifier=source.identifier)
    outcome = RunExecutor(store, plan, run_id, source, Stop(), on_progress=another_job_writes,
                          state_dir=tmp_path / "state").execute()
    assert outcome.status == "completed"
    assert store.get_run(run_id).target_mark is None

    await sync(engine)
    assert reads == ["music.csv", "music.csv"]
    assert table(store) == songs(12), "the row the other job overwrote was left so"
    await sync(engine)  # that run read it with nothing beside: the next one need not
    assert reads == ["music.csv", "music.csv"]


async def test_a_run_resumed_from_a_checkpoint_leaves_the_next_run_to_read(
        store, tmp_path, reads):
    path = write_rows(tmp_path / "music.csv", 12)
    engine = engine_for(store, path, tmp_path, batch_rows=3)
    plan = engine.plans["music"]
    run_id, paused = pause_after(store, plan, tmp_path / "state", 3)
    assert paused.status == "pending" and store.get_run(run_id).checkpoint
    resumed = RunExecutor(store, plan, run_id, plan.make_source(), Stop(),
                          state_dir=tmp_path / "state").execute()
    assert resumed.status == "completed"
    assert store.get_run(run_id).target_mark is None

    await sync(engine)
    assert reads == ["music.csv"] * 3
    assert table(store) == songs(12)


def pause_after(store: Store, plan: Any, state_dir: Path, processed: int
                ) -> tuple[int, Outcome]:
    """A run of ``plan`` paused (as for a shutdown) once ``processed`` records are in."""
    stop = Stop()

    def pause(progress: Progress) -> None:
        if progress.processed >= processed:
            stop.request("shutdown")

    source = plan.make_source()
    run_id = store.create_run(job=plan.name, trigger="cli", source_type="csv",
                              source_identifier=source.identifier)
    return run_id, RunExecutor(store, plan, run_id, source, stop, on_progress=pause,
                               state_dir=state_dir).execute()
