"""``syncd sync`` as a user runs it: summary, errors with line numbers, logs, progress bar."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from tests.syncd_cli import SYNCD, run_on_terminal, syncd

CONFIG = """
[daemon]
state_dir = "{tmp}/state"
log_format = "json"
[jobs.music]
batch_rows = 500
[jobs.music.source]
type = "csv"
path = "{tmp}/music.csv"
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
[jobs.music.constants]
content_type = "music"
"""


def setup(tmp_path: Path, body: str) -> Path:
    (tmp_path / "music.csv").write_text(body)
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.replace("{tmp}", str(tmp_path)))
    return config


def test_sync_reports_bad_rows_with_line_numbers_and_syncs_the_rest(tmp_path):
    config = setup(tmp_path, "id,song_name\n1,One\n2,Two,extra\n,NoKey\n3,Three\n")
    result = syncd("sync", "music", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert ("4 processed, 2 inserted, 0 updated, 0 unchanged, 0 skipped, 2 failed"
            in result.stdout)
    assert "validation/field_count: line 3: expected 2 fields, got 3" in result.stdout
    assert "validation/missing_key: line 4" in result.stdout
    db = sqlite3.connect(tmp_path / "state" / "syncd.db")
    assert db.execute("SELECT external_id, title FROM content_index ORDER BY 1").fetchall() == [
        ("1", "One"), ("3", "Three")]
    assert db.execute("SELECT item_identifier FROM sync_errors ORDER BY id").fetchall() == [
        ("line 3",), ("line 4",)]


def test_every_run_log_line_is_json_with_run_id_and_job(tmp_path):
    config = setup(tmp_path, "id,song_name\n1,One\n")
    result = syncd("sync", "music", "--config", str(config))
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    assert all(line["run_id"] == 1 and line["job"] == "music" for line in lines)


def test_dry_run_counts_and_writes_nothing(tmp_path):
    config = setup(tmp_path, "id,song_name\n1,One\n2,Two\n")
    result = syncd("sync", "music", "--config", str(config), "--dry-run")
    assert result.returncode == 0
    assert "(dry run: nothing written): 2 processed, 2 inserted" in result.stdout
    db = sqlite3.connect(tmp_path / "state" / "syncd.db")
    assert db.execute("SELECT COUNT(*) FROM content_index").fetchone() == (0,)


def test_a_missing_file_fails_the_run_clearly(tmp_path):
    config = setup(tmp_path, "")
    result = syncd("sync", "music", "--config", str(config), "--file", str(tmp_path / "no.csv"))
    assert result.returncode != 0
    assert "no.csv" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_pipe_given_as_the_file_is_refused_by_its_own_name(tmp_path):
    """``cat music.csv | syncd sync music --file /dev/stdin``: a stream has no checkpoint
    to resume from; the error names /dev/stdin, not the pipe it resolves to."""
    config = setup(tmp_path, "")
    done = subprocess.run([SYNCD, "sync", "music", "--config", str(config), "--file",
                           "/dev/stdin"], input="id,song_name\n1,a\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "/dev/stdin is not a regular file; refused, nothing was read" in done.stdout
    assert "pipe:[" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_file_whose_name_is_not_utf8_is_refused_by_name(tmp_path):
    """Runs and records keep a source's name as text: ``caf\\xe9.csv`` (Latin-1 bytes) is
    refused before anything is read, in one line, not with a UnicodeEncodeError."""
    config = setup(tmp_path, "")
    latin = os.fsencode(tmp_path) + b"/caf\xe9.csv"
    with open(latin, "wb") as f:
        f.write(b"id,song_name\n1,a\n")
    done = subprocess.run([os.fsencode(SYNCD), b"sync", b"music", b"--config",
                           os.fsencode(config), b"--file", latin], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "caf\\xe9.csv' is not UTF-8 text; nothing was read (rename it)" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unknown_job_names_the_configured_ones(tmp_path):
    result = syncd("sync", "musik", "--config", str(setup(tmp_path, "")))
    assert result.returncode == 2
    assert "unknown job 'musik'" in result.stderr and "jobs: music" in result.stderr


def test_output_into_a_pipe_its_reader_closed_ends_quietly(tmp_path):
    """``syncd check-config | head -1``: the reader leaves early; syncd stops writing
    and exits 141 (128 + SIGPIPE), as ``ls | head`` does, without a traceback. The
    pipe's read end is closed before syncd starts, so its first write meets it closed."""
    config = setup(tmp_path, "id,song_name\n1,a\n")
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run([SYNCD, "check-config", "--config", str(config)], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert done.returncode == 141
    assert done.stderr == ""


def test_a_progress_bar_is_drawn_on_a_terminal(tmp_path):
    """With its rows, even for a run over before tqdm's first redraw (0.1 s)."""
    rows = "".join(f"{i},Song {i}\n" for i in range(20))
    config = setup(tmp_path, "id,song_name\n" + rows)
    code, text = run_on_terminal([SYNCD, "sync", "music", "--config", str(config)])
    assert code == 0
    assert "music #1" in text and "rows=" in text  # the tqdm bar
    assert "20 processed, 20 inserted" in text


def add_jobs(config: Path, jobs: tuple[tuple[str, str], ...]) -> None:
    """Copies of the music job, each (name, upstream) with its own table."""
    text = config.read_text()
    music = text[text.index("[jobs.music]"):]
    for name, after in jobs:
        job = music.replace("jobs.music", f"jobs.{name}")
        job = job.replace('key = ["external_id"]', f'key = ["external_id"]\ntable = "{name}"')
        if after:
            job = job.replace(f"[jobs.{name}]", f"[jobs.{name}]\ndepends_on = [\"{after}\"]", 1)
        text += job
    config.write_text(text)


def test_sync_all_runs_jobs_in_dependency_order(tmp_path):
    config = setup(tmp_path, "id,song_name\n1,One\n")
    add_jobs(config, (("albums", "music"), ("charts", "albums"), ("genres", "")))
    result = syncd("sync", "--all", "--config", str(config))
    assert result.returncode == 0, result.stderr
    order = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("run ")]
    assert sorted(order) == ["albums", "charts", "genres", "music"]
    assert order.index("music") < order.index("albums") < order.index("charts")


def test_sync_all_runs_every_job_whose_upstreams_completed_after_a_failure(tmp_path):
    config = setup(tmp_path, "id,song_name\n1,One\n")
    add_jobs(config, (("albums", "music"), ("charts", "albums"), ("genres", ""),
                      ("moods", "genres")))
    (tmp_path / "music.csv").unlink()  # music fails; genres and moods do not need it
    music, rest = config.read_text().split("[jobs.albums]", 1)
    config.write_text(music + "[jobs.albums]" + rest.replace("music.csv", "genres.csv"))
    (tmp_path / "genres.csv").write_text("id,song_name\n1,One\n")
    result = syncd("sync", "--all", "--config", str(config))
    assert result.returncode == 1, result.stderr
    statuses = {line.split()[2]: line.split()[3].rstrip(":")
                for line in result.stdout.splitlines() if line.startswith("run ")}
    assert statuses == {"music": "failed", "genres": "completed", "moods": "completed"}, \
        result.stdout + result.stderr
    assert "skipped albums: upstream music failed" in result.stdout
    assert "skipped charts: upstream albums was skipped" in result.stdout
