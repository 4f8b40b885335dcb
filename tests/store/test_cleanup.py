"""Cleanup: old runs, old ingested-file records and long-unavailable content go, on the
``[daemon].cleanup`` schedule or by ``syncd cleanup [--dry-run]``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.config import validate
from syncd.store.cleanup import clean
from syncd.store.models import ContentIndex, IngestedFile, SyncRun, utcnow
from tests.conftest import BACKENDS
from tests.syncd_cli import syncd

CONFIG = """
[daemon]
state_dir = "{tmp}/state"
{daemon}
[jobs.music]
on_missing = "mark_unavailable"
[jobs.music.source]
path = "{tmp}/music.csv"
[jobs.music.target]
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
[jobs.albums]
on_missing = "mark_unavailable"
[jobs.albums.source]
path = "{tmp}/music.csv"
[jobs.albums.target]
table = "albums"
key = ["external_id"]
[jobs.albums.mapping]
external_id = "id"
title = "song_name"
"""
LONG_AGO = "2020-01-01 00:00:00"


def write_config(tmp_path: Path, daemon: str = "") -> str:
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.replace("{tmp}", str(tmp_path)).replace("{daemon}", daemon))
    return str(path)


def synced_twice(tmp_path: Path) -> tuple[str, sqlite3.Connection]:
    """Both jobs synced with songs 1-3, then with 1-2: song 3 is unavailable in each."""
    config = write_config(tmp_path)
    for body in ("id,song_name\n1,A\n2,B\n3,C\n", "id,song_name\n1,A\n2,B\n"):
        (tmp_path / "music.csv").write_text(body)
        result = syncd("sync", "--all", "--config", config)
        assert result.returncode == 0, result.stdout + result.stderr
    return config, sqlite3.connect(tmp_path / "state" / "syncd.db", isolation_level=None)


def counts(db: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                 for table in ("sync_runs", "ingested_files", "content_index", "albums"))


def test_syncd_cleanup_removes_old_runs_files_and_long_unavailable_content(tmp_path):
    config, db = synced_twice(tmp_path)
    kept = tmp_path / "kept.csv"  # a watched file kept in place (after = "keep")
    kept.write_text("id\n")
    for path, size, mtime in ((tmp_path / "gone.csv", 1, 1.0),
                              (kept, kept.stat().st_size, kept.stat().st_mtime)):
        db.execute("INSERT INTO ingested_files (path, size, mtime, sha256, job, sync_run_id, "
                   "ingested_at) VALUES (?, ?, ?, 'x', 'music', 1, ?)",
                   (str(path), size, mtime, LONG_AGO))
    db.execute("INSERT INTO ingested_files (path, size, mtime, sha256, job, ingested_at) "
               "VALUES ('/recent.csv', 1, 1.0, 'y', 'music', ?)", (str(utcnow()),))
    db.execute("UPDATE sync_runs SET created_at = ? WHERE id IN (1, 2)", (LONG_AGO,))
    for table in ("content_index", "albums"):
        db.execute(f"UPDATE {table} SET last_synced_at = ? WHERE NOT is_available",
                   (LONG_AGO,))
    assert counts(db) == (4, 3, 3, 3)

    dry = syncd("cleanup", "--dry-run", "--config", config)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 runs finished before" in dry.stdout
    assert ("would remove 1 ingested-file records before" in dry.stdout
            and "(1 kept: the file is still in place)" in dry.stdout)
    assert "would remove 1 records unavailable since before" in dry.stdout
    assert "from albums" in dry.stdout and "from content_index" in dry.stdout
    assert "dry run: nothing removed" in dry.stdout
    assert counts(db) == (4, 3, 3, 3)

    done = syncd("cleanup", "--config", config)
    assert done.returncode == 0, done.stderr
    assert "removed 2 runs finished before" in done.stdout
    assert counts(db) == (2, 2, 2, 2)
    assert db.execute("SELECT title FROM albums ORDER BY 1").fetchall() == [("A",), ("B",)]
    assert db.execute("SELECT path FROM ingested_files ORDER BY id").fetchall() == [
        (str(kept),), ("/recent.csv",)]


def test_recent_unavailable_records_and_zero_days_are_kept(tmp_path):
    config, db = synced_twice(tmp_path)  # song 3 unavailable since just now
    db.execute("UPDATE sync_runs SET created_at = ?", (LONG_AGO,))
    result = syncd("cleanup", "--config", config)
    assert "removed 0 records unavailable" in result.stdout
    assert counts(db) == (0, 0, 3, 3)  # the runs were old
    write_config(tmp_path, "keep_runs_days = 0\nkeep_content_days = 0")
    db.execute("UPDATE content_index SET last_synced_at = ?", (LONG_AGO,))
    result = syncd("cleanup", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "kept for good (keep_runs_days = 0)" in result.stdout
    assert "kept for good (keep_content_days = 0)" in result.stdout
    assert counts(db) == (0, 0, 3, 3)


def test_old_runs_take_their_artifacts_along(tmp_path):
    config, db = synced_twice(tmp_path)
    artifacts = tmp_path / "state" / "artifacts"
    for run in (1, 2, 3):  # a browser's screenshot of a failed step, per run
        (artifacts / str(run)).mkdir(parents=True)
        (artifacts / str(run) / "2027-03-01-create-step3.png").write_bytes(b"png")
    db.execute("UPDATE sync_runs SET created_at = ? WHERE id IN (1, 2)", (LONG_AGO,))
    dry = syncd("cleanup", "--dry-run", "--config", config)
    assert "with their 0 errors and the artifacts of 2" in dry.stdout, dry.stdout
    assert sorted(p.name for p in artifacts.iterdir()) == ["1", "2", "3"]
    done = syncd("cleanup", "--config", config)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in artifacts.iterdir()) == ["3"]


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_clean_on_every_backend(store):
    now = utcnow()
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    for ext, available, synced in (("1", False, old), ("2", False, recent), ("3", True, old)):
        ContentIndex.create(external_id=ext, is_available=available, last_synced_at=synced)
    store.db.execute_sql("CREATE TABLE plain (id INTEGER)")  # no availability columns
    for created in (now - timedelta(days=31), now - timedelta(days=29)):
        SyncRun.create(job="j", trigger="cli", status="completed", source_type="csv",
                       created_at=created)
    SyncRun.create(job="j", trigger="cli", status="in_progress", source_type="csv",
                   created_at=now - timedelta(days=99))  # still going: never old
    IngestedFile.create(path="/nowhere/x.csv", size=1, mtime=1.0, sha256="s",
                        ingested_at=now - timedelta(days=31))
    daemon = validate({}).daemon
    dry = clean(store, daemon, ["content_index", "plain", "missing"], dry_run=True, now=now)
    assert (dry.runs, dry.ingested_files, dry.content) == (1, 1, {"content_index": 1})
    assert ContentIndex.select().count() == 3 and SyncRun.select().count() == 3
    done = clean(store, daemon, ["content_index", "plain", "missing"], now=now)
    assert (done.runs, done.ingested_files, done.content) == (1, 1, {"content_index": 1})
    assert sorted(c.external_id for c in ContentIndex.select()) == ["2", "3"]
    assert SyncRun.select().count() == 2 and IngestedFile.select().count() == 0


async def test_the_cleanup_runs_on_the_configured_schedule(store, tmp_path):
    from syncd.engine import Engine
    from syncd.triggers.schedule import Scheduler

    for cron in ("5 1 * * *", ""):
        config = validate({"daemon": {"state_dir": str(tmp_path), "cleanup": cron}})
        scheduler = Scheduler(Engine(store, {}, tmp_path), config)
        scheduler.start()
        try:
            job = scheduler.scheduler.get_job("cleanup")
        finally:
            scheduler.stop()
        if not cron:
            assert job is None  # only by hand
            continue
        fire = job.next_run_time.astimezone(UTC)
        assert (fire.hour, fire.minute) == (1, 5)


def test_check_config_says_when_the_cleanup_runs(tmp_path):
    config = write_config(tmp_path, 'cleanup = "5 1 * * *"\nkeep_content_days = 10')
    result = syncd("check-config", "--config", config)
    assert result.returncode == 0, result.stderr
    today = datetime.now(UTC)
    fire = today.replace(hour=1, minute=5, second=0, microsecond=0)
    fire = fire if fire > today else fire + timedelta(days=1)
    assert (f"cleanup '5 1 * * *': runs and ingested-file records after 30 days; "
            f"unavailable records after 10 days; next {fire.isoformat()}") in result.stdout


def test_the_line_snapshots_of_jobs_gone_from_the_config_go(tmp_path):
    config, _ = synced_twice(tmp_path)
    lines = tmp_path / "state" / "lines"
    left = {job: sorted(p.name for p in lines.iterdir() if p.name.startswith(job))
            for job in ("music", "albums")}
    assert [len(names) for names in left.values()] == [3, 3]  # json, lines, keys each
    (lines / "notes.txt").write_text("not a snapshot")  # a file that is not ours stays
    only_music = CONFIG.split("[jobs.albums]")[0].replace("{tmp}", str(tmp_path))
    Path(config).write_text(only_music.replace("{daemon}", ""))

    result = syncd("cleanup", "--dry-run", "--config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would remove the line snapshots of jobs no longer configured: albums" \
        in result.stdout
    assert sorted(p.name for p in lines.iterdir() if p.name.startswith("albums")) \
        == left["albums"]

    result = syncd("cleanup", "--config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed the line snapshots of jobs no longer configured: albums" in result.stdout
    assert sorted(p.name for p in lines.iterdir()) == sorted([*left["music"], "notes.txt"])
    result = syncd("cleanup", "--config", config)  # nothing more to remove, nothing said
    assert "line snapshots" not in result.stdout


def test_a_job_named_like_another_with_a_dash_keeps_its_snapshot_and_odd_files_stay(tmp_path):
    from syncd.engine.line_snapshot import left_by_others

    lines = tmp_path / "lines"
    lines.mkdir()
    names = ["a.json", "a-0123456789abcdef.lines", "a-0123456789abcdef.keys",
             "a-b.json", "a-b-fedcba9876543210.lines", ".a-b.json.tmp", "a-b-notatoken.lines"]
    for name in names:
        (lines / name).write_text("")
    (lines / "c.json").mkdir()  # what no run writes is never taken for a snapshot
    (lines / "d.json").symlink_to(tmp_path / "elsewhere.json")
    assert {job: sorted(p.name for p in paths)
            for job, paths in left_by_others(tmp_path, {"a-b"}).items()} == {
        "a": ["a-0123456789abcdef.keys", "a-0123456789abcdef.lines", "a.json"]}
    assert sorted(left_by_others(tmp_path, {"a"})) == ["a-b"]
    assert left_by_others(tmp_path / "nowhere", set()) == {}
