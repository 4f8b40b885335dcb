"""``[daemon] isolate_runs``: a run in a worker process of its own, with a real daemon.

The child must do what a run in a thread does (resume, pause on SIGTERM, land every
record exactly once), and more: its death fails only its run, and the daemon's death
ends it too, so that no orphan writes on after the daemon is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import test_daemon
from tests.crashkit import (
    Workspace,
    assert_synced,
    gone,
    query,
    read_csv,
    run_state,
    wait_for_commits,
    write_config,
    write_csv,
)
from tests.poll import wait_until
from tests.test_daemon import (
    Notifications,
    log_records,
    start_daemon,
    stop_daemon,
    wait_for_log,
    wait_until_completed,
)

ROWS = 20_000
short_dir, notify = test_daemon.short_dir, test_daemon.notify  # the daemon tests' fixtures


@pytest.fixture
def isolated_ws(tmp_path: Path, short_dir: Path) -> Iterator[Callable[[int], Workspace]]:
    """A workspace whose daemon runs jobs in worker processes, API on a unix socket."""
    made: list[Workspace] = []

    def make(batch_rows: int) -> Workspace:
        root = tmp_path / f"ws{len(made)}"
        root.mkdir()
        csv_path = tmp_path / "music.csv"
        write_csv(csv_path, ROWS, seed=len(made) + 3)
        extra = (f"[usb]\nenabled = false\n[api]\n"
                 f"listen = {json.dumps('unix:' + str(short_dir / f'api{len(made)}.sock'))}\n")
        config = write_config(root, batch_rows=batch_rows, daemon_extra="isolate_runs = true",
                              extra=extra)
        ws = Workspace(root, config, csv_path)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()


def interrupted(ws: Workspace) -> int:
    """A run cut off by kill -9 mid-file: the daemon resumes it at start."""
    sync = ws.start()
    state = wait_for_commits(sync, ws.db, 2, timeout=60)
    assert state is not None, f"finished before it could be killed\n{ws.log_tail()}"
    sync.send_signal(signal.SIGKILL)
    sync.wait(timeout=30)
    return state.id


def worker_pid(ws: Workspace, proc: subprocess.Popen[bytes], run_id: int) -> int:
    record = wait_for_log(ws, proc, lambda r: r.get("event") == "run in a worker process"
                          and r.get("run_id") == run_id)
    pid = int(record["pid"])
    assert pid != proc.pid
    return pid


def with_worker(ws: Workspace, notify: Notifications
                ) -> tuple[subprocess.Popen[bytes], int, int]:
    """A daemon resuming an interrupted run in a worker: (daemon, run id, worker pid)."""
    run_id = interrupted(ws)
    proc = start_daemon(ws, notify)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)
    return proc, run_id, worker_pid(ws, proc, run_id)


def finished_by_next_start(ws: Workspace, notify: Notifications, history: str) -> None:
    """The next daemon start finishes the run: every record once."""
    proc = start_daemon(ws, notify)
    wait_until_completed(ws, proc)
    assert_synced(ws, read_csv(ws.csv), history)
    stop_daemon(ws, proc, notify)


def test_a_resumed_run_completes_in_a_process_of_its_own(
        isolated_ws: Callable[[int], Workspace], notify: Notifications) -> None:
    ws = isolated_ws(500)
    proc, run_id, _ = with_worker(ws, notify)
    wait_until_completed(ws, proc)
    assert_synced(ws, read_csv(ws.csv), "killed, resumed in a worker process")
    assert any(r.get("event") == "run completed" and r.get("run_id") == run_id
               for r in log_records(ws)), ws.log_tail()
    stop_daemon(ws, proc, notify)


def test_a_killed_worker_fails_its_run_and_a_retry_lands_every_record_once(
        isolated_ws: Callable[[int], Workspace], notify: Notifications) -> None:
    ws = isolated_ws(200)
    proc, run_id, pid = with_worker(ws, notify)
    assert os.getpriority(os.PRIO_PROCESS, pid) == 10  # below the API's
    os.kill(pid, signal.SIGKILL)
    failed = wait_for_log(ws, proc, lambda r: r.get("event") == "run failed"
                          and r.get("run_id") == run_id)
    assert "signal 9" in failed["error"], failed
    assert run_state(ws.db).status == "failed"
    assert proc.poll() is None, ws.log_tail()  # the daemon lives on

    retry = ws.start("retry", str(run_id))
    assert retry.wait(timeout=60) == 0, ws.log_tail()
    wait_until(lambda: (s := run_state(ws.db)) is not None and s.status == "completed",
               60, message=ws.log_tail)
    runs = query(ws.db, "SELECT status, items_processed, items_inserted FROM sync_runs "
                        "ORDER BY id")
    assert [r[0] for r in runs] == ["failed", "completed"], runs
    assert sum(r[1] for r in runs) == sum(r[2] for r in runs) == ROWS, runs  # each once
    stored = query(ws.db, "SELECT external_id, title, artist, genre FROM content_index")
    assert len(stored) == ROWS and set(stored) == read_csv(ws.csv)
    stop_daemon(ws, proc, notify)


def test_sigterm_pauses_the_workers_run_and_the_next_start_finishes_it(
        isolated_ws: Callable[[int], Workspace], notify: Notifications) -> None:
    ws = isolated_ws(50)
    proc, _, pid = with_worker(ws, notify)
    os.kill(pid, signal.SIGTERM)  # systemd signals every process of the unit: the worker
    stop_daemon(ws, proc, notify)  # ignores it, and pauses when the daemon says so
    assert gone(pid)
    paused = run_state(ws.db)
    assert paused is not None and paused.status == "pending", f"{paused}\n{ws.log_tail()}"
    assert paused.processed < ROWS, paused

    finished_by_next_start(ws, notify, "paused by SIGTERM in a worker, resumed")


def test_a_killed_daemon_takes_its_worker_with_it(
        isolated_ws: Callable[[int], Workspace], notify: Notifications) -> None:
    ws = isolated_ws(200)
    proc, _, pid = with_worker(ws, notify)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    wait_until(lambda: gone(pid), 30, message="the worker outlived the killed daemon")

    finished_by_next_start(ws, notify, "daemon and worker killed, resumed")


def test_a_cancelled_run_stops_in_its_worker(
        isolated_ws: Callable[[int], Workspace], notify: Notifications) -> None:
    ws = isolated_ws(50)
    proc, run_id, pid = with_worker(ws, notify)
    cancel = ws.start("cancel", str(run_id))
    assert cancel.wait(timeout=60) == 0, ws.log_tail()
    wait_until(lambda: gone(pid), 30, message="the worker outlived its cancelled run")
    state = run_state(ws.db)
    assert state is not None and state.status == "cancelled", f"{state}\n{ws.log_tail()}"
    assert proc.poll() is None
    stop_daemon(ws, proc, notify)
