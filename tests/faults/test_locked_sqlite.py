"""A SQLite store another program holds locked: the run waits, then continues.

A real second process takes ``BEGIN EXCLUSIVE`` on the store's file in the middle of
a ``syncd sync`` and keeps it for 10 s (a backup tool, a person in the sqlite3 shell);
the run must neither fail nor lose or repeat a record once the lock goes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crashkit import (
    Workspace,
    assert_synced,
    read_csv,
    wait_for_commits,
    workspace,
    write_csv,
)

__all__ = ["workspace"]

pytestmark = pytest.mark.slow

HOLD_S = 10
ROWS = 60_000

LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
print("released", flush=True)
"""


def test_a_run_waits_out_an_exclusive_lock_and_completes_exactly(
        tmp_path: Path, workspace: Callable[..., Workspace]) -> None:
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, ROWS, seed=5)
    ws = workspace(csv_path, batch_rows=500)
    sync = ws.start()
    assert wait_for_commits(sync, ws.db, 2, timeout=60) is not None, ws.log_tail()
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(ws.db), str(HOLD_S)],
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    locked_at = time.monotonic()
    code = sync.wait(timeout=120)
    waited = time.monotonic() - locked_at
    assert locker.wait(timeout=30) == 0
    assert code == 0, f"syncd sync exited {code} under a lock\n{ws.log_tail()}"
    assert waited >= HOLD_S - 0.5, f"finished {waited:.1f}s after the lock: it never waited"
    assert_synced(ws, read_csv(csv_path), f"an exclusive lock held {HOLD_S}s mid-run")
