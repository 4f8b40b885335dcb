"""A full disk under a running daemon: one clear error, the daemon up, a retry completes it.

``tests/test_faults.py`` covers ``syncd sync`` on a full disk (a clear message, a second
try while still full, a rerun once there is space). What it leaves out is the daemon:
``syncd run`` with its state_dir and SQLite store on a 2 MiB tmpfs fills it mid-run;
the run must fail with a ``system``/``disk_full`` error, the daemon must stay up and
answer, and once the disk is enlarged a retry must continue from the checkpoint
(not start over): the two attempts' counters add up to the file exactly, every record
is stored once, and the SQLite file passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.crashkit import Workspace, query, read_csv, run_state, write_config, write_csv
from tests.poll import wait_until
from tests.test_faults import closed_port, http, small_disk

__all__ = ["small_disk"]  # a fixture, used by name

pytestmark = pytest.mark.slow

ROWS = 30_000


def test_a_daemon_run_on_a_full_disk_fails_clearly_and_its_retry_completes_it(
        small_disk: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, ROWS, seed=13)
    port = closed_port()
    api = f"http://127.0.0.1:{port}"
    assert small_disk == tmp_path / "state"  # the workspace's state_dir is the small disk
    extra = (f'[api]\nlisten = "127.0.0.1:{port}"\nallowed_paths = '
             f'{json.dumps([str(tmp_path)])}\n[usb]\nenabled = false\n')
    ws = Workspace(tmp_path, write_config(tmp_path, batch_rows=500, extra=extra), csv_path)
    try:
        daemon = ws.start("run")

        def up() -> bool:
            assert daemon.poll() is None, f"the daemon exited {daemon.returncode}\n" \
                + ws.log_tail()
            return True

        wait_until(lambda: up() and http("GET", api + "/v1/health")[0] == 200, timeout=60,
                   message=ws.log_tail)
        status, body = http("POST", api + "/v1/sync/trigger",
                            {"job": "music", "sourceIdentifier": str(csv_path)})
        assert status == 202, body
        first = body["data"]["syncRunId"]
        failed = wait_until(lambda: up() and (s := run_state(ws.db)) is not None
                            and s.status not in ("pending", "in_progress") and s, timeout=60,
                            message=ws.log_tail)
        assert (failed.id, failed.status) == (first, "failed"), ws.log_tail()
        assert 0 < failed.processed < ROWS, failed
        errors = query(ws.db, "SELECT error_type, error_code, is_retryable, error_message "
                              "FROM sync_errors WHERE sync_run_id = ?", (first,))
        assert errors and all(e[:3] == ("system", "disk_full", 1) for e in errors), errors
        assert "disk holding the database is full" in errors[0][3]
        assert "Traceback" not in ws.log.read_text(encoding="utf-8")
        assert http("GET", api + f"/v1/sync/{first}")[0] == 200  # it still answers

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        status, body = http("POST", api + f"/v1/sync/{first}/retry")
        assert status == 202, body
        second = body["data"]["syncRunId"]
        wait_until(lambda: up() and (s := run_state(ws.db)) is not None and s.id == second
                   and s.status == "completed", timeout=60, message=ws.log_tail)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, ws.log_tail()
    finally:
        ws.close()

    assert query(ws.db, "PRAGMA integrity_check") == [("ok",)]
    runs = query(ws.db, "SELECT id, status, parent_run, items_processed, items_inserted, "
                        "items_updated, items_unchanged, items_failed FROM sync_runs "
                        "ORDER BY id")
    assert [r[:3] for r in runs] == [(first, "failed", None), (second, "completed", first)]
    processed, inserted = runs[0][3] + runs[1][3], runs[0][4] + runs[1][4]
    assert (processed, inserted) == (ROWS, ROWS), (
        f"the retry did not continue from the checkpoint: {runs}")
    assert runs[1][5:] == (0, 0, 0), runs
    stored = set(query(ws.db, "SELECT external_id, title, artist, genre FROM content_index"))
    assert query(ws.db, "SELECT COUNT(*) FROM content_index") == [(ROWS,)]
    assert stored == read_csv(csv_path)
