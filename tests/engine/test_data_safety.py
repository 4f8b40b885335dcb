"""Runs that must not lose data: the mass-removal guard, duplicate keys, a changing file.

Real CSV files into real SQL tables (SQLite and the servers), through the engine.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from syncd import hookimpl
from syncd.adapters import ItemError, WriteResult
from syncd.config import validate
from syncd.engine import Engine, Request, resolve_jobs
from syncd.engine.duplicates import DuplicateKeys
from syncd.engine.executor import Progress, RunExecutor, Stop
from syncd.errors import ConfigError, RetryableError
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd_builtin.sql_target import SqlTarget
from tests.api_fixtures import write_lines, write_rows
from tests.conftest import BACKENDS
from tests.syncd_cli import syncd

HEADER = "id,title,artist"


def config(path: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"daemon": {"state_dir": str(tmp_path / "state")}, "usb": {"enabled": False},
            "jobs": {"music": {
                "source": {"type": "csv", "path": str(path)},
                "target": {"type": extra.pop("target", "sql"), "table": "songs",
                           "key": ["external_id"]},
                "mapping": {"external_id": "id", "title": "title", "artist": "artist"},
                "batch_rows": extra.pop("batch_rows", 4),
                "retry": {"attempts": 3, "initial_s": 0.01, "max_s": 0.02}, **extra}}}


def engine_for(store: Store, path: Path, tmp_path: Path, plugins: tuple[Any, ...] = (),
               **extra: Any) -> Engine:
    cfg = validate(config(path, tmp_path, **extra))
    _, registry = get_pluginmanager(load_entrypoints=True, plugins=plugins)
    return Engine(store, resolve_jobs(cfg, registry, "test.toml"), tmp_path / "state")


def table(store: Store) -> dict[str, tuple[str, str, bool]]:
    rows = store.db.execute_sql("SELECT external_id, title, artist, is_available FROM songs")
    return {r[0]: (r[1], r[2], bool(r[3])) for r in rows.fetchall()}


def errors(store: Store, run_id: int) -> list[tuple[str, str, str, str, bool]]:
    return [(e.error_type, e.error_code, e.item_identifier, e.error_message, e.is_retryable)
            for e in store.errors_of(run_id)]


# -- the mass-removal guard -------------------------------------------------------------


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
@pytest.mark.parametrize("on_missing", ["delete", "mark_unavailable"])
async def test_a_sync_removing_most_records_stops_until_confirmed(store, tmp_path, on_missing):
    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path, on_missing=on_missing)
    assert (await engine.run(Request("music", "cli")))[1].status == "completed"

    write_rows(path, 4)  # 6 of 10 gone: over the default 50%
    run_id, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "failed"
    assert "would " + ("delete" if on_missing == "delete" else "mark unavailable") + \
        " 6 of the 10 records" in outcome.error
    assert "--allow-mass-missing" in outcome.error and "max_missing" in outcome.error
    assert table(store) == {str(i): (f"Song {i}", f"Artist {i}", True) for i in range(1, 11)}
    run = store.get_run(run_id)
    assert run.items_missing == 0
    [(kind, code, _, _, retryable)] = errors(store, run_id)
    assert (kind, code, retryable) == ("validation", "mass_missing", False)

    # a person confirms: the retry continues from the end of the file and removes them
    retry_id = await engine.retry(run_id, allow_mass_missing=True)
    assert (await engine.wait(retry_id)).status == "completed"
    assert store.get_run(retry_id).items_missing == 6
    kept = table(store)
    if on_missing == "delete":
        assert sorted(kept, key=int) == ["1", "2", "3", "4"]
    else:
        assert [k for k, v in kept.items() if v[2]] == ["1", "2", "3", "4"]


async def test_the_limit_is_a_share_or_a_count_and_a_new_confirmed_sync_goes_through(
        store, tmp_path):
    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path, on_missing="delete")
    await engine.run(Request("music", "cli"))
    write_rows(path, 5)  # 5 of 10: not more than 50%
    assert (await engine.run(Request("music", "cli")))[1].status == "completed"
    assert len(table(store)) == 5

    engine = engine_for(store, path, tmp_path, on_missing="delete", max_missing=1)
    write_rows(path, 3)  # 2 of 5 missing, more than 1
    _, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "failed" and "more than max_missing = 1" in outcome.error
    assert len(table(store)) == 5
    _, outcome = await engine.run(Request("music", "cli", allow_mass_missing=True))
    assert outcome.status == "completed" and len(table(store)) == 3


async def test_an_empty_source_never_empties_the_table(store, tmp_path):
    path = write_rows(tmp_path / "music.csv", 3)
    engine = engine_for(store, path, tmp_path, on_missing="delete")
    await engine.run(Request("music", "cli"))
    write_lines(path, [HEADER])
    _, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "failed" and "3 of the 3 records" in outcome.error
    assert len(table(store)) == 3


async def test_the_guard_counts_first_for_a_target_that_cannot_roll_back(store, tmp_path):
    """A remote removal cannot be rolled back: nothing is sent when over the limit."""
    from syncd.testing import MemoryRemote
    from tests import restish

    path = write_rows(tmp_path / "music.csv", 4)
    with MemoryRemote() as remote:
        cfg = config(path, tmp_path, on_missing="delete")
        cfg["jobs"]["music"]["target"] = {"type": "restish", "url": remote.url,
                                          "key": ["external_id"]}
        _, registry = get_pluginmanager(load_entrypoints=True, plugins=(restish,))
        engine = Engine(store, resolve_jobs(validate(cfg), registry, "test.toml"),
                        tmp_path / "state")
        assert (await engine.run(Request("music", "cli")))[1].status == "completed"
        assert len(remote.items) == 4
        write_rows(path, 1)
        _, outcome = await engine.run(Request("music", "cli"))
        assert outcome.status == "failed" and "3 of the 4 records" in outcome.error
        assert len(remote.items) == 4
        assert not [r for r in remote.requests if r[0] == "DELETE"]


def test_max_missing_takes_a_share_or_a_count_and_a_bad_value_names_the_key(tmp_path):
    path = tmp_path / "x.csv"
    assert validate(config(path, tmp_path)).jobs["music"].max_missing == "50%"
    assert validate(config(path, tmp_path, max_missing="10%")).jobs["music"].max_missing == "10%"
    assert validate(config(path, tmp_path, max_missing=250)).jobs["music"].max_missing == 250
    for bad in ("lots", "120%", -3):
        with pytest.raises(ConfigError, match=r"jobs\.music\.max_missing: expected a share"):
            validate(config(path, tmp_path, max_missing=bad))


# -- duplicate keys ---------------------------------------------------------------------


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_key_seen_twice_is_reported_naming_both_lines_and_not_written(store, tmp_path):
    lines = [HEADER, "1,First,A", "2,Two,B", "3,Three,C", "4,Four,D", "5,Five,E",
             "1,Again,Z", "6,Six,F", "2,Twice,Y"]
    path = write_lines(tmp_path / "music.csv", lines)
    engine = engine_for(store, path, tmp_path, batch_rows=3)
    run_id, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "completed"
    run = store.get_run(run_id)
    assert (run.items_processed, run.items_inserted, run.items_failed) == (8, 6, 2)
    assert errors(store, run_id) == [
        ("validation", "duplicate_key", "line 7",
         "key '1' already seen at line 2; line 7 not written", False),
        ("validation", "duplicate_key", "line 9",
         "key '2' already seen at line 3; line 9 not written", False)]
    assert table(store)["1"][0] == "First" and table(store)["2"][0] == "Two"


async def test_a_duplicate_within_one_batch_is_caught_too(store, tmp_path):
    path = write_lines(tmp_path / "music.csv", [HEADER, "1,A,a", "1,B,b", "2,C,c"])
    engine = engine_for(store, path, tmp_path, batch_rows=100)
    run_id, _ = await engine.run(Request("music", "cli"))
    assert [e[2:4] for e in errors(store, run_id)] == [
        ("line 3", "key '1' already seen at line 2; line 3 not written")]
    assert table(store) == {"1": ("A", "a", True), "2": ("C", "c", True)}


@pytest.mark.parametrize("items", [["line 2", "line 3", "line 4"],
                                   ["a\0b", "c", "d"], ["\1odd", "e", "f"]])
def test_the_index_names_the_earlier_item_whatever_its_text(items: list[str]) -> None:
    index = DuplicateKeys([0])
    try:
        assert not index.check([("k1",), ("k2",), ("k3",)], items).found()
        check = index.check([("k4",), ("k2",)], ["next 1", "next 2"])
        assert check.found()
        errors: list[ItemError] = []
        assert check.drop([("k4",), ("k2",)], ["next 1", "next 2"], errors) == (
            [("k4",)], ["next 1"])
        assert [e.message for e in errors] == [
            f"key 'k2' already seen at {items[1]}; next 2 not written"]
    finally:
        index.close()


async def test_a_batch_retried_after_a_failed_write_is_no_duplicate_of_itself(store, tmp_path):
    class Flaky(SqlTarget):
        name = "flaky_sql"
        failures = 1

        def write(self, rows: Sequence[Any], items: Sequence[str]) -> WriteResult:
            if items and items[0] == "line 5" and Flaky.failures:
                Flaky.failures -= 1
                raise RetryableError("injected: the write failed once")
            return super().write(rows, items)

    class Plugin:
        @hookimpl
        def syncd_register_adapters(self, registry: Any) -> None:
            registry.add_target(Flaky)

    path = write_rows(tmp_path / "music.csv", 10)
    engine = engine_for(store, path, tmp_path, plugins=(Plugin(),), target="flaky_sql",
                        batch_rows=3)
    run_id, outcome = await engine.run(Request("music", "cli"))
    assert outcome.status == "completed" and Flaky.failures == 0
    assert errors(store, run_id) == []
    assert len(table(store)) == 10


# -- a source that changes while it is read ---------------------------------------------


def test_a_file_truncated_while_read_fails_retryably_and_removes_nothing(store, tmp_path):
    path = write_rows(tmp_path / "music.csv", 40)
    cfg = validate(config(path, tmp_path, on_missing="delete", max_missing="100%",
                          batch_rows=5))
    _, registry = get_pluginmanager(load_entrypoints=True)
    plan = resolve_jobs(cfg, registry, "test.toml")["music"]

    def run(on_progress: Any = None) -> tuple[int, Any]:
        source = plan.make_source()
        run_id = store.create_run(job="music", trigger="cli", source_type="csv",
                                  source_identifier=source.identifier)
        executor = RunExecutor(store, plan, run_id, source, Stop(), on_progress=on_progress,
                               state_dir=tmp_path / "state")
        return run_id, executor.execute()

    assert run()[1].status == "completed"
    # every line changed: of the same file, or one with a line changed, the run would
    # read nothing or that line, before the truncation (a read over, not one cut)
    path.write_text(path.read_text(encoding="utf-8").replace("Song ", "Tune "),
                    encoding="utf-8")
    truncated = threading.Event()

    def truncate(progress: Progress) -> None:
        if not truncated.is_set():
            truncated.set()
            with path.open("r+b") as f:
                f.truncate(path.stat().st_size // 4)

    run_id, outcome = run(truncate)
    assert truncated.is_set()
    assert outcome.status == "failed" and "changed while it was read" in outcome.error
    [(kind, code, _, _, retryable)] = errors(store, run_id)
    assert (kind, code, retryable) == ("conflict", "source_changed", True)
    assert store.get_run(run_id).items_missing == 0
    assert len(table(store)) == 40


def test_syncd_sync_stops_a_mass_removal_in_one_line_until_allowed(tmp_path):
    path = write_rows(tmp_path / "music.csv", 10)
    toml = tmp_path / "syncd.toml"
    toml.write_text(f"""\
[daemon]
state_dir = "{tmp_path / 'state'}"
log_format = "json"
[usb]
enabled = false
[jobs.music]
on_missing = "delete"
[jobs.music.source]
type = "csv"
path = "{path}"
[jobs.music.target]
type = "sql"
table = "songs"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "title"
""")
    assert syncd("--config", str(toml), "sync", "music").returncode == 0
    write_lines(path, ["id,title", "1,Song 1"])
    stopped = syncd("--config", str(toml), "sync", "music")
    assert stopped.returncode == 1 and "Traceback" not in stopped.stdout + stopped.stderr
    assert "would delete 9 of the 10 records" in stopped.stdout
    assert "syncd sync music --allow-mass-missing" in stopped.stdout
    allowed = syncd("--config", str(toml), "sync", "music", "--allow-mass-missing")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "9 missing" in allowed.stdout
    db = sqlite3.connect(tmp_path / "state" / "syncd.db")
    assert db.execute("SELECT external_id FROM songs").fetchall() == [("1",)]
