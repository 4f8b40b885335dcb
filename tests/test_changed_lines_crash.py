"""A run that reads only the changed lines, killed with SIGKILL at any instant, loses
nothing: resumed (reading on from its checkpoint) or started again, the table ends as
the file, and the next run, whatever snapshot the killed one left, too.

Real ``syncd sync`` processes on a real SQLite file (helpers in ``tests/crashkit.py``).
"""

from __future__ import annotations

import random
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.crashkit import Workspace, query, read_csv, run_state, workspace

__all__ = ["workspace"]  # a fixture, used by name

ROWS = 100_000
SEED = 20261130
MAX_TRIES = 16  # kills, until two landed while the run read


def write_lines(path: Path, changed_every: int = 0, tag: str = "") -> None:
    """One record a line (the crash suite's file has records over two lines)."""
    with path.open("w", encoding="utf-8") as f:
        f.write("id,song_name,artist_name,music_genre\n")
        for i in range(1, ROWS + 1):
            title = f"Song {i}{tag if changed_every and i % changed_every == 0 else ''}"
            f.write(f"ID-{i:07d},{title},Artist {i % 997},Rock\n")


def sync(ws: Workspace) -> None:
    code = ws.start().wait(timeout=120)
    assert code == 0, f"syncd sync exited {code}\n{ws.log_tail()}"


def assert_as_file(ws: Workspace, path: Path) -> None:
    stored = set(query(ws.db, "SELECT external_id, title, artist, genre FROM content_index"))
    assert stored == read_csv(path), ws.log_tail()
    assert query(ws.db, "SELECT COUNT(*) FROM sync_errors") == [(0,)]
    runs = query(ws.db, "SELECT id, status, items_processed, items_failed FROM sync_runs")
    assert all(status == "completed" and processed == ROWS and failed == 0
               for _, status, processed, failed in runs), runs


def test_sigkill_while_reading_changed_lines(tmp_path: Path,
                                            workspace: Callable[..., Workspace]) -> None:
    path = tmp_path / "music.csv"
    write_lines(path)
    ws = workspace(path, batch_rows=500)
    sync(ws)
    rng = random.Random(SEED)
    history: list[tuple[float, int, str | None]] = []
    while sum(1 for *_, state in history if state == "in_progress") < 2 \
            and len(history) < MAX_TRIES:
        state = run_state(ws.db)
        if state is not None and state.status == "completed":  # a new version to read
            write_lines(path, changed_every=rng.randrange(20, 60), tag=f" ({len(history)})")
        proc = ws.start()
        delay = rng.uniform(0.3, 1.0)
        try:
            code = proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=30)
        state = run_state(ws.db)
        history.append((round(delay, 3), code, state and state.status))
        assert code in (0, -signal.SIGKILL), f"exit {code} after {history}\n{ws.log_tail()}"
    assert any(state == "in_progress" for *_, state in history), (
        f"no kill landed while the run read (seed {SEED}): {history}")
    sync(ws)  # resumes the killed run (reading on from its checkpoint), if there is one
    assert_as_file(ws, path)
    write_lines(path, changed_every=41, tag=" (remastered)")  # whatever the kills left
    sync(ws)
    assert_as_file(ws, path)
