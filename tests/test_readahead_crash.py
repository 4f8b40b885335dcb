"""kill -9 of a ``syncd sync`` whose file a reader process reads ahead: the reader goes
with it, and the next ``syncd sync`` ends with every record exactly once.

A real file over ``READ_AHEAD_BYTES``, real ``syncd`` processes and a real SQLite store
(``tests/crashkit.py``). The sweep of kills at random instants is in
``test_crash_safety.py`` (slow); this is its sample for a file read ahead.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from syncd.engine.readahead import READ_AHEAD_BYTES
from tests.crashkit import (
    Workspace,
    assert_synced,
    gone,
    read_csv,
    wait_for_commits,
    workspace,
    write_csv,
)
from tests.poll import wait_until

__all__ = ["workspace"]  # a fixture, used by name

ROWS = 520_000  # about 29 MB: over READ_AHEAD_BYTES


def readers_of(pid: int) -> list[int]:
    """The reader processes ``pid`` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and b"syncd.readchild" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_sigkill_of_a_sync_reading_ahead_takes_its_reader_and_loses_nothing(
        tmp_path: Path, workspace: Callable[..., Workspace]) -> None:
    path = tmp_path / "big.csv"
    write_csv(path, ROWS, seed=7)
    assert path.stat().st_size >= READ_AHEAD_BYTES
    ws = workspace(path, batch_rows=20_000)
    proc = ws.start()
    state = wait_for_commits(proc, ws.db, 2, timeout=120)
    assert state is not None and state.processed < ROWS, "it ended before the kill"
    [reader] = readers_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    wait_until(lambda: gone(reader), timeout=30,
               message=lambda: f"reader {reader} outlived its sync")
    ws.finish(timeout=300)
    assert_synced(ws, read_csv(path), f"killed after {state.processed} rows")
