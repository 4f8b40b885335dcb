"""kill -9 at many random instants of a sync *and of its resumes*, on SQLite and PostgreSQL.

``tests/test_crash_safety.py`` kills the first run of a large file a few times; here one
run is cut ≥ 50 times, and every resume is itself killed: while it starts, while it
reads its checkpoint and skips what was committed, mid-batch, at a commit. After the
last resume the store must hold every record exactly once, the one run's counters must
be exact over the whole chain (processed = inserted = rows), and a SQLite file must
pass ``PRAGMA integrity_check``. Commits are frequent (``batch_rows`` small) so kills
fall between many of them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.crashkit import (
    RunState,
    Workspace,
    assert_synced,
    read_csv,
    run_state,
    wait_for_commits,
    workspace,
    write_csv,
)

__all__ = ["workspace"]  # a fixture, used by name

ROWS = 40_000
BATCH_ROWS = 500
#: Reproduce a failure with the seed its message names: SYNCD_CRASH_SEED=… pytest …
SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20240611"))


@dataclass(frozen=True)
class Kill:
    """One kill -9: where it was aimed, when, and the committed run before and after."""

    round: int
    aim: str  # "start": before the process's first commit; "work": after it
    at: float  # seconds after the process started
    before: RunState | None
    after: RunState | None

    @property
    def in_resume(self) -> bool:
        """The killed process was resuming a run that had committed rows already."""
        return self.before is not None and self.before.processed > 0

    @property
    def before_first_commit(self) -> bool:
        progress = (self.after.processed if self.after else 0) - (
            self.before.processed if self.before else 0)
        return progress == 0 and (self.after is None or self.after.status != "completed")

    @property
    def mid_run(self) -> bool:
        """Killed after committing rows of its own, with rows still to do."""
        return (self.after is not None and self.after.status != "completed"
                and self.after.processed > (self.before.processed if self.before else 0))


def kill_round(ws: Workspace, number: int, rng: random.Random, kills: int) -> list[Kill]:
    """Start ``syncd sync`` and kill it, alternately during its work (a commit in,
    then up to 10 ms on: mid-batch or at the next commit) and during its start-up (a
    resume's start: opening the store, finding the run, skipping the committed rows),
    until ``kills`` or the run completed; then let a last resume finish.

    How long a start takes is measured by the work kills, so the start kills are aimed
    right however loaded the machine is."""
    history: list[Kill] = []
    startup = 0.0
    while len(history) < kills and ws.needs_run():
        aim = ("work", "start")[len(history) % 2]
        before = run_state(ws.db)
        began = time.monotonic()
        proc = ws.start()
        if aim == "work":
            state = wait_for_commits(proc, ws.db, 1, timeout=60)
            startup = time.monotonic() - began
            delay = rng.uniform(0, 0.01)
            if state is not None:
                threading.Event().wait(delay)
        else:
            delay = rng.uniform(0.05, 0.8 * (startup or 1.0))  # before its first commit
        try:
            code = proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=30)
        if code != -signal.SIGKILL:
            assert code == 0, f"syncd sync exited {code}\n{ws.log_tail()}"
            break  # it finished first
        kill = Kill(number, aim, round(time.monotonic() - began, 3), before,
                    run_state(ws.db))
        history.append(kill)
        assert kill.before is None or (kill.after is not None and kill.after.processed
                                       >= kill.before.processed), f"a commit undone: {kill}"
    ws.finish()
    return history


def sweep(kind: str, kills: int, tmp_path: Path, workspace: Callable[..., Workspace],
          new_database: Callable[[str], str]) -> list[Kill]:
    """Rounds of kill_round, each on a fresh store, until ``kills`` kills."""
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, ROWS, SEED)
    expected = read_csv(csv_path)
    rng = random.Random(SEED)
    history: list[Kill] = []
    began = time.monotonic()
    while len(history) < kills:
        ws = workspace(csv_path, batch_rows=BATCH_ROWS, database=new_database(kind))
        done = kill_round(ws, len({k.round for k in history}), rng, kills - len(history))
        assert_synced(ws, expected, f"{kind}, seed {SEED}, kills {done}")
        history += done
    in_resume_start = [k for k in history if k.in_resume and k.before_first_commit]
    mid_run = [k for k in history if k.mid_run]
    print(f"{kind}: {len(history)} kills in {time.monotonic() - began:.1f}s over "
          f"{history[-1].round + 1} round(s), {len(in_resume_start)} in a resume before its "
          f"first commit, {len(mid_run)} mid-run")
    assert len(in_resume_start) >= max(1, kills // 5), (
        f"too few kills in a resume's start: {history}")
    assert len(mid_run) >= max(1, kills // 5), f"too few kills mid-run: {history}"
    return history


BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", BACKENDS)
def test_fifty_kills_during_a_sync_and_its_resumes_lose_nothing(
        kind: str, tmp_path: Path, workspace: Callable[..., Workspace],
        new_database: Callable[[str], str]) -> None:
    assert len(sweep(kind, 50, tmp_path, workspace, new_database)) >= 50


def test_a_few_kills_during_a_sync_and_its_resumes_lose_nothing(
        tmp_path: Path, workspace: Callable[..., Workspace],
        new_database: Callable[[str], str]) -> None:
    """The sample that runs without ``slow``: six kills on SQLite."""
    sweep("sqlite", 6, tmp_path, workspace, new_database)
