"""``[daemon].database = "sqlite:…"``: where the file goes, and one line when it cannot."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.syncd_cli import syncd

CONFIG = """
[daemon]
state_dir = "{tmp}/state"
database = "{database}"
[jobs.music.source]
path = "{tmp}/music.csv"
[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


def config(tmp_path: Path, database: str) -> str:
    (tmp_path / "music.csv").write_text("id,song_name\n1,One\n")
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.replace("{tmp}", str(tmp_path)).replace("{database}", database))
    return str(path)


def titles(db: Path) -> list[tuple]:
    return sqlite3.connect(db).execute("SELECT title FROM content_index").fetchall()


def test_four_slashes_is_an_absolute_path(tmp_path):
    (tmp_path / "db").mkdir()
    path = config(tmp_path, f"sqlite:///{tmp_path}/db/x.db")  # sqlite:////tmp/…
    checked = syncd("check-config", "--config", path)
    assert checked.returncode == 0, checked.stderr
    assert f"database SQLite {tmp_path}/db/x.db," in checked.stdout
    result = syncd("sync", "music", "--config", path)
    assert result.returncode == 0, result.stderr
    assert titles(tmp_path / "db" / "x.db") == [("One",)]


def test_three_slashes_is_a_path_in_state_dir(tmp_path):
    result = syncd("sync", "music", "--config", config(tmp_path, "sqlite:///x.db"),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert titles(tmp_path / "state" / "x.db") == [("One",)]
    assert not (tmp_path / "x.db").exists()


def test_a_new_database_gets_16_kib_pages_and_an_old_one_keeps_its_own(tmp_path):
    """New stores are made with 16 KiB pages (faster batches); a store made before, with
    SQLite's 4 KiB, opens as it is and keeps its rows."""
    new, old = tmp_path / "state" / "new.db", tmp_path / "state" / "old.db"
    (tmp_path / "state").mkdir()
    made = sqlite3.connect(old)
    made.execute("PRAGMA journal_mode = wal")
    made.execute("CREATE TABLE content_index (id INTEGER PRIMARY KEY, external_id TEXT, "
                 "title TEXT)")
    made.execute("INSERT INTO content_index (external_id, title) VALUES ('0', 'Zero')")
    made.commit()
    made.close()
    for db, pages in ((new, 16384), (old, 4096)):
        result = syncd("sync", "music", "--config", config(tmp_path, f"sqlite:///{db.name}"))
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA page_size").fetchone() == (pages,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert titles(old) == [("Zero",), ("One",)]


def one_line_with_a_hint(result: subprocess.CompletedProcess[str], says: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    error, hint = result.stderr.splitlines()
    assert error.startswith("syncd: error: database ") and says in error, error
    assert hint.startswith("hint: "), hint
    return hint


def test_the_issues_url_fails_check_config_in_one_line_saying_four_slashes(tmp_path):
    path = config(tmp_path, "sqlite:///srv/syncd/x.db")
    for command in ("check-config", "sync"):
        args = [command, "--config", path] + (["music"] if command == "sync" else [])
        hint = one_line_with_a_hint(syncd(*args), f"the folder {tmp_path}/state/srv/syncd "
                                    "does not exist")
        assert "for /srv/syncd/x.db write sqlite:////srv/syncd/x.db" in hint


def test_a_directory_is_one_line(tmp_path):
    (tmp_path / "adir").mkdir()
    result = syncd("sync", "music", "--config", config(tmp_path, f"sqlite:///{tmp_path}/adir"))
    one_line_with_a_hint(result, "which is a directory")


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    (tmp_path / "x.db").write_bytes(b"not a database at all" * 100)
    result = syncd("sync", "music", "--config", config(tmp_path, f"sqlite:///{tmp_path}/x.db"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"syncd: error: cannot open the SQLite database "
                                    f"{tmp_path}/x.db: file is not a database\nhint: ")
    assert len(result.stderr.splitlines()) == 2


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only filesystem (permissions alone do not stop root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    place = tmp_path / "ro"
    place.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(place)],
                   check=True)
    yield place
    subprocess.run(["umount", str(place)], check=True)


def test_a_read_only_place_is_one_line(tmp_path, read_only_dir):
    path = config(tmp_path, f"sqlite:///{read_only_dir}/x.db")
    for args in (("check-config",), ("sync", "music")):
        one_line_with_a_hint(syncd(*args, "--config", path), "is not writable")


@pytest.mark.parametrize("database,says", [
    ("sqlite:///:memory:", "an in-memory database forgets every run"),
    ("sqlite://host/x.db", "expected sqlite:///NAME or sqlite:////ABSOLUTE/PATH"),
    ("sqlite:///", "expected sqlite:///NAME or sqlite:////ABSOLUTE/PATH")])
def test_a_malformed_sqlite_url_is_one_line(tmp_path, database, says):
    one_line_with_a_hint(syncd("check-config", "--config", config(tmp_path, database)), says)
