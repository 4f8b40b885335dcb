"""The database gone mid-run, for a real ``syncd run`` daemon: it pauses, stays up, continues.

The shared PostgreSQL server is never restarted (other tests use it); the daemon reaches
it through ``CuttableProxy``, which is cut for a few seconds mid-run: every connection
reset, new ones refused, exactly what a restarting server or a lost route looks like to
the daemon. Meanwhile ``GET /v1/health`` must answer 503 ``database_unreachable`` at
once, the daemon must neither exit nor hang, and the run must not advance; afterwards
the run continues from its checkpoint and completes with every record exactly once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crashkit import Workspace, assert_synced, read_csv, run_state, workspace, write_csv
from tests.faults.proxy import CuttableProxy
from tests.poll import wait_until
from tests.test_faults import closed_port, http

__all__ = ["workspace"]  # a fixture, used by name

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROWS = 60_000
OUTAGE_S = 4.0  # within the job's retry budget (about 8 s): the run must not fail
#: Backoff short enough that the run goes on within a second of the database's return
#: (the default, 1 s doubling, waits up to 8 s after a 4 s outage).
RETRY = "attempts = 10\ninitial_s = 0.25\nmax_s = 1\n"
HEALTH_S = 5.0  # /v1/health must answer within this, database or not


def health(api: str) -> tuple[int, object]:
    began = time.monotonic()
    status, body = http("GET", api + "/v1/health")
    took = time.monotonic() - began
    assert took < HEALTH_S, f"/v1/health took {took:.1f}s: it hangs on the database"
    return status, body


def test_a_daemon_rides_out_its_database_vanishing_for_a_few_seconds(
        tmp_path: Path, workspace: Callable[..., Workspace],
        new_database: Callable[[str], str]) -> None:
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, ROWS, seed=11)
    direct = new_database("postgres")
    name = direct.rsplit("/", 1)[1]
    port = closed_port()
    api = f"http://127.0.0.1:{port}"
    with CuttableProxy() as proxy:
        via = f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"
        ws = workspace(csv_path, batch_rows=500,
                       daemon_extra=f"database = {json.dumps(via)}\n",
                       extra=f'[api]\nlisten = "127.0.0.1:{port}"\n'
                       f"allowed_paths = {json.dumps([str(tmp_path)])}\n[usb]\nenabled = false\n"
                       f"[jobs.music.retry]\n{RETRY}")
        ws.database = direct  # the test reads the store directly, never through the proxy
        daemon = ws.start("run")

        def up() -> bool:
            assert daemon.poll() is None, f"the daemon exited {daemon.returncode}\n" \
                + ws.log_tail()
            return True

        wait_until(lambda: up() and health(api)[0] == 200, timeout=60,
                   message=ws.log_tail)
        status, body = http("POST", api + "/v1/sync/trigger",
                            {"job": "music", "sourceIdentifier": str(csv_path)})
        assert status == 202, body
        wait_until(lambda: up() and (s := run_state(direct)) is not None
                   and s.processed >= ROWS // 4, timeout=60, interval=0.01,
                   message=lambda: f"{run_state(direct)}\n{ws.log_tail()}")

        cut_at = time.monotonic()
        assert proxy.cut() >= 1, "the daemon held no connection to cut"
        frozen = run_state(direct)
        assert frozen is not None and frozen.status == "in_progress", frozen
        answers: list[tuple[int, object]] = []
        while time.monotonic() - cut_at < OUTAGE_S:  # the outage lasts this long
            up()
            answers.append(health(api))
            threading.Event().wait(0.2)
        assert answers and all(s == 503 for s, _ in answers), answers
        _, body = answers[-1]
        assert isinstance(body, dict) and body["error"]["code"] == "database_unreachable", body
        paused = run_state(direct)
        assert paused is not None and paused.processed == frozen.processed, (
            f"the run wrote {frozen} -> {paused} without a database?")
        assert paused.status == "in_progress", f"the outage ended the run: {paused}"

        proxy.restore()
        back_at = time.monotonic()
        wait_until(lambda: up() and health(api)[0] == 200, timeout=30, interval=0.1,
                   message=ws.log_tail)
        healthy_after = time.monotonic() - back_at
        wait_until(lambda: up() and (s := run_state(direct)) is not None
                   and s.status != "in_progress", timeout=90, interval=0.1,
                   message=lambda: f"{run_state(direct)}\n{ws.log_tail()}")
        completed_after = time.monotonic() - back_at
        assert health(api)[0] == 200
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0, ws.log_tail()
    print(f"outage {OUTAGE_S}s at {frozen.processed} rows: {len(answers)} health answers "
          f"503; healthy {healthy_after:.2f}s and run completed {completed_after:.2f}s "
          f"after the database came back")
    assert_synced(ws, read_csv(csv_path), f"a {OUTAGE_S}s outage at {frozen}")
