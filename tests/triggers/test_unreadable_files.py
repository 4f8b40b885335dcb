"""A file that cannot be read at all never changes a record (issue 7, item 1).

Taken as a complete source with no records, a 0-byte or header-less file would make
``on_missing`` delete or mark unavailable every record of the job. Here it fails its
run instead: in a watched folder it goes to ``failed/`` with its ``.error.json``, and
``syncd sync --file`` exits non-zero with the reason.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.config import validate
from syncd.engine import Engine, resolve_jobs
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.store.models import SyncRun
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.watch import FolderWatcher
from tests.poll import wait_for
from tests.syncd_cli import syncd

BAD = {"zero.csv": b"", "bom.csv": b"\xef\xbb\xbf", "blank.csv": b"\r\n\n\n",
       "photo.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4}
GOOD = b"id,song_name\n1,One\n2,Two\n3,Three\n"
ROWS = [("1", "One", 1), ("2", "Two", 1), ("3", "Three", 1)]


def table(store: Store) -> list[tuple]:
    return [(a, b, int(c)) for a, b, c in store.db.execute_sql(
        "SELECT external_id, title, is_available FROM content_index ORDER BY 1").fetchall()]


@pytest.fixture(params=["delete", "mark_unavailable"])
async def watched(request: pytest.FixtureRequest, store: Store,
                  tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    """A watched inbox whose job already holds three records."""
    inbox = tmp_path / "inbox"
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": {"music": {
        "source": {"type": "csv"}, "target": {"type": "sql", "key": ["external_id"]},
        "mapping": {"external_id": "id", "title": "song_name"}, "on_missing": request.param,
        "watch": {"path": str(inbox), "patterns": ["*.csv"]}}}})
    _, registry = get_pluginmanager()
    engine = Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")
    watcher = FolderWatcher(FileIngestor(engine), config)
    await watcher.start()
    (inbox / ".good.csv.part").write_bytes(GOOD)
    (inbox / ".good.csv.part").rename(inbox / "good.csv")
    await wait_for(lambda: table(store) == ROWS and not (inbox / "good.csv").exists())
    yield store, inbox
    await watcher.stop()
    await engine.shutdown()


@pytest.mark.parametrize("name", list(BAD))
async def test_a_file_that_cannot_be_read_goes_to_failed_and_changes_no_record(watched, name):
    store, inbox = watched
    (inbox / f".{name}.part").write_bytes(BAD[name])
    (inbox / f".{name}.part").rename(inbox / name)
    report_path = inbox / "failed" / f"{name}.error.json"
    await wait_for(lambda: report_path.exists())
    report = json.loads(report_path.read_text())
    assert name in report["error"] and "\n" not in report["error"]
    assert any(why in report["error"] for why in (
        "is empty (0 bytes)", "has no header", "does not look like a CSV text file"))
    assert (inbox / "failed" / name).read_bytes() == BAD[name]
    run = SyncRun.get_by_id(report["runId"])
    assert (run.status, run.items_missing, run.items_processed) == ("failed", 0, 0)
    assert table(store) == ROWS


CONFIG = """
[daemon]
state_dir = "{tmp}/state"
[jobs.music]
on_missing = "{on_missing}"
[jobs.music.source]
type = "csv"
path = "{tmp}/music.csv"
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


@pytest.mark.parametrize("on_missing", ["delete", "mark_unavailable"])
def test_sync_of_a_0_byte_file_fails_in_one_line_and_changes_no_record(tmp_path, on_missing):
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.replace("{tmp}", str(tmp_path)).replace("{on_missing}", on_missing))
    (tmp_path / "music.csv").write_bytes(GOOD)
    assert syncd("sync", "music", "--config", str(config)).returncode == 0
    (tmp_path / "zero.csv").write_bytes(b"")
    result = syncd("sync", "music", "--config", str(config), "--file", str(tmp_path / "zero.csv"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{tmp_path / 'zero.csv'} is empty (0 bytes)" in output
    assert "Traceback" not in output and "completed" not in result.stdout
    db = sqlite3.connect(tmp_path / "state" / "syncd.db")
    assert db.execute("SELECT external_id, title, is_available FROM content_index "
                      "ORDER BY 1").fetchall() == ROWS
