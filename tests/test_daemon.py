"""``syncd run`` as systemd runs it: a real process talking sd_notify to a real socket.

What systemd relies on (SPEC §4) is only visible from outside the process: READY=1
once it serves, WATCHDOG=1 often enough, STOPPING=1 and exit 0 on SIGTERM, SIGHUP
reloading without dying on a bad file, and interrupted runs finished at start. The
unit file shipped in ``systemd/`` is checked here too, since it must agree with that
behaviour (Type=notify, the watchdog, ``syncd run``).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.crashkit import (
    SYNCD,
    Workspace,
    assert_synced,
    read_csv,
    run_state,
    wait_for_commits,
    write_config,
    write_csv,
)
from tests.poll import wait_until

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "syncd.service"
WATCHDOG_USEC = 400_000
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
SMALL_ROWS = 20_000


class Notifications:
    """The test's end of ``$NOTIFY_SOCKET``: every state the daemon sent, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[tuple[float, str]] = []  # (monotonic time, "KEY=value")

    def states(self) -> list[str]:
        return [state for _, state in self.received]

    def wait_for(self, proc: subprocess.Popen[bytes], state: str, count: int = 1,
                 timeout: float = 30, log: Callable[[], str] | None = None) -> list[float]:
        """Times of the first ``count`` ``state`` messages, waiting for them if needed."""
        deadline = time.monotonic() + timeout
        while True:
            times = [t for t, s in self.received if s == state]
            if len(times) >= count:
                return times[:count]
            exited = proc.poll() is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (exited and not self._receive(0.05)):
                why = f"exited {proc.returncode}" if exited else f"not within {timeout}s"
                raise AssertionError(f"{count} x {state}: {why}; got {self.states()}\n"
                                     f"{log() if log else ''}")
            self._receive(min(0.1, remaining))

    def reset(self) -> None:
        """Forget what an earlier daemon sent, so the next one is judged on its own."""
        while self._receive(0):
            pass
        self.received.clear()

    def _receive(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        now = time.monotonic()
        self.received.extend((now, line) for line in data.decode().splitlines() if line)
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Socket paths must fit in 108 bytes; pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="syncd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon_ws(tmp_path: Path, short_dir: Path) -> Iterator[Callable[..., Workspace]]:
    """Workspaces for a daemon: no USB monitor, the API on a unix socket (no port clash)."""
    made: list[Workspace] = []

    def make(csv_path: Path | None = None, batch_rows: int = 2000) -> Workspace:
        root = tmp_path / f"ws{len(made)}"
        root.mkdir()
        extra = (f"[usb]\nenabled = false\n[api]\n"
                 f"listen = {json.dumps('unix:' + str(short_dir / f'api{len(made)}.sock'))}\n")
        config = write_config(root, batch_rows=batch_rows, extra=extra)
        ws = Workspace(root, config, csv_path or root / "music.csv")
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()


@pytest.fixture
def notify(short_dir: Path) -> Iterator[Notifications]:
    n = Notifications(short_dir / "notify.sock")
    yield n
    n.close()


def start_daemon(ws: Workspace, notify: Notifications,
                 preexec_fn: Callable[[], object] | None = None) -> subprocess.Popen[bytes]:
    """``syncd run`` with the environment systemd gives a Type=notify service with a watchdog."""
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    notify.reset()
    return ws.start("run", env=env, preexec_fn=preexec_fn)


def stop_daemon(ws: Workspace, proc: subprocess.Popen[bytes], notify: Notifications) -> None:
    """SIGTERM: the daemon says STOPPING=1 and exits 0, as systemd expects."""
    proc.send_signal(signal.SIGTERM)
    notify.wait_for(proc, "STOPPING=1", log=ws.log_tail)
    code = proc.wait(timeout=60)
    assert code == 0, f"syncd run exited {code} on SIGTERM\n{ws.log_tail()}"


def log_records(ws: Workspace) -> list[dict[str, Any]]:
    """The JSON log lines syncd wrote (log_format = "json"); other lines are skipped."""
    records = []
    for line in ws.log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def wait_until_completed(ws: Workspace, proc: subprocess.Popen[bytes],
                         timeout: float = 60) -> None:
    """Poll the database until the job's run is completed, while the daemon stays up."""
    def completed() -> bool:
        assert proc.poll() is None, f"syncd run exited {proc.returncode}\n{ws.log_tail()}"
        state = run_state(ws.db)
        return state is not None and state.status == "completed"

    wait_until(completed, timeout, message=lambda: f"{run_state(ws.db)}\n{ws.log_tail()}")


def wait_for_log(ws: Workspace, proc: subprocess.Popen[bytes],
                 match: Callable[[dict[str, Any]], bool], timeout: float = 30
                 ) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        assert proc.poll() is None, f"syncd run exited {proc.returncode}\n{ws.log_tail()}"
        return next((r for r in reversed(log_records(ws)) if match(r)), None)

    return wait_until(found, timeout, interval=0.02,
                      message=lambda: f"(no such log line)\n{ws.log_tail()}")


# -- sd_notify ---------------------------------------------------------------------


def test_notifies_ready_then_watchdog_then_stopping(
        daemon_ws: Callable[..., Workspace], notify: Notifications) -> None:
    """systemd starts dependents on READY=1 and kills a daemon whose pings stop."""
    ws = daemon_ws()
    proc = start_daemon(ws, notify)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)
    pings = notify.wait_for(proc, "WATCHDOG=1", count=4, timeout=10, log=ws.log_tail)
    states = notify.states()
    assert states.index("READY=1") < states.index("WATCHDOG=1"), states
    average = (pings[-1] - pings[0]) / (len(pings) - 1)
    assert average < WATCHDOG_USEC / 1e6, f"pings every {average:.3f}s miss the watchdog"
    assert proc.poll() is None
    stop_daemon(ws, proc, notify)
    assert notify.states()[-1] == "STOPPING=1"


def test_resumes_an_interrupted_run_at_start(
        tmp_path: Path, daemon_ws: Callable[..., Workspace], notify: Notifications) -> None:
    """A run cut off by kill -9 (or a reboot) is finished by the next daemon start."""
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, SMALL_ROWS, seed=7)
    ws = daemon_ws(csv_path, batch_rows=500)
    sync = ws.start()
    state = wait_for_commits(sync, ws.db, 2, timeout=60)
    assert state is not None, f"finished before it could be killed\n{ws.log_tail()}"
    sync.send_signal(signal.SIGKILL)
    sync.wait(timeout=30)
    cut = run_state(ws.db)
    assert cut is not None and cut.status == "in_progress", cut
    assert 0 < cut.processed < SMALL_ROWS, cut

    proc = start_daemon(ws, notify)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)
    wait_until_completed(ws, proc)
    assert any(r.get("event") == "resuming run" and r.get("run_id") == cut.id
               for r in log_records(ws)), ws.log_tail()
    assert_synced(ws, read_csv(csv_path), f"killed at {cut}, resumed by syncd run")
    stop_daemon(ws, proc, notify)


def test_sigterm_mid_run_leaves_it_for_the_next_start(
        tmp_path: Path, daemon_ws: Callable[..., Workspace], notify: Notifications) -> None:
    """``systemctl stop`` (or a reboot) pauses a run; the next start finishes it."""
    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, SMALL_ROWS, seed=11)
    ws = daemon_ws(csv_path, batch_rows=200)
    sync = ws.start()
    assert wait_for_commits(sync, ws.db, 1, timeout=60) is not None, ws.log_tail()
    sync.send_signal(signal.SIGKILL)
    sync.wait(timeout=30)

    proc = start_daemon(ws, notify)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)
    assert wait_for_commits(proc, ws.db, 1, timeout=60) is not None, ws.log_tail()
    stop_daemon(ws, proc, notify)
    paused = run_state(ws.db)
    assert paused is not None and paused.status == "pending", f"{paused}\n{ws.log_tail()}"
    assert paused.processed < SMALL_ROWS, paused

    proc = start_daemon(ws, notify)
    wait_until_completed(ws, proc)
    assert_synced(ws, read_csv(csv_path), "killed, resumed, stopped, resumed again")
    stop_daemon(ws, proc, notify)


BROKEN = {
    "invalid TOML": "[daemon\nstate_dir = \n",
    "bad value": "[daemon]\nmax_concurrent_runs = 0\n",
}


@pytest.mark.parametrize("broken", list(BROKEN.values()), ids=list(BROKEN))
def test_sighup_with_a_broken_config_keeps_the_daemon_running(
        broken: str, daemon_ws: Callable[..., Workspace], notify: Notifications) -> None:
    """``systemctl reload`` after a typo must not take the daemon down; a fix then loads."""
    ws = daemon_ws()
    good = ws.config.read_text(encoding="utf-8")
    proc = start_daemon(ws, notify)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)

    ws.config.write_text(broken, encoding="utf-8")
    proc.send_signal(signal.SIGHUP)
    failure = wait_for_log(ws, proc, lambda r: r.get("level") == "error"
                           and "reload" in str(r.get("event", "")).lower())
    assert ws.config.name in json.dumps(failure, ensure_ascii=False), failure
    notify.wait_for(proc, "RELOADING=1", log=ws.log_tail)
    pings = len([s for s in notify.states() if s == "WATCHDOG=1"])
    notify.wait_for(proc, "WATCHDOG=1", count=pings + 2, timeout=10, log=ws.log_tail)

    ws.config.write_text(good + "\n[jobs.films.source]\ntype = \"csv\"\n"
                         "[jobs.films.mapping]\nexternal_id = \"id\"\n", encoding="utf-8")
    proc.send_signal(signal.SIGHUP)
    wait_for_log(ws, proc, lambda r: r.get("event") == "config reloaded"
                 and "films" in r.get("jobs", []))
    stop_daemon(ws, proc, notify)


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0


@pytest.mark.skipif(not _mdwe_supported(), reason="kernel without PR_SET_MDWE (Linux < 6.3)")
def test_runs_with_memory_deny_write_execute(
        tmp_path: Path, daemon_ws: Callable[..., Workspace], notify: Notifications) -> None:
    """The unit sets MemoryDenyWriteExecute=yes: syncd must not need W+X memory.

    PR_SET_MDWE is the kernel's own form of that systemd setting, kept across exec.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def deny_write_execute() -> None:
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")

    csv_path = tmp_path / "music.csv"
    write_csv(csv_path, 1000, seed=3)
    ws = daemon_ws(csv_path)
    sync = ws.start(preexec_fn=deny_write_execute)
    assert sync.wait(timeout=120) == 0, ws.log_tail()
    proc = start_daemon(ws, notify, preexec_fn=deny_write_execute)
    notify.wait_for(proc, "READY=1", log=ws.log_tail)
    notify.wait_for(proc, "WATCHDOG=1", log=ws.log_tail)
    stop_daemon(ws, proc, notify)


# -- the unit file -----------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file, each key with all its values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    """A systemd time span such as ``30``, ``30s``, ``1min 30s`` or ``500ms``."""
    units = {"us": 1e-6, "ms": 1e-3, "": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
             "h": 3600.0, "hr": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(n) * units[u] for n, u in parts)


def test_unit_file_matches_the_daemon() -> None:
    """The unit must ask for what ``syncd run`` does: notify, watchdog, reload, restart."""
    unit = parse_unit(UNIT)
    service = unit["Service"]
    one = {key: values[-1] for key, values in service.items()}  # the last one wins
    assert one["Type"] == "notify"
    assert 0 < seconds(one["WatchdogSec"]) <= 120
    assert one["Restart"] == "on-failure"
    assert "syncd" in one["StateDirectory"].split()
    argv = shlex.split(one["ExecStart"])
    assert Path(argv[0]).name == "syncd" and argv[0].startswith("/"), argv
    assert argv[1] == "run", argv
    env = dict(item.split("=", 1) for value in service.get("Environment", [])
               for item in shlex.split(value))
    assert argv[argv.index("--config") + 1] == env["SYNCD_CONFIG"] == "/etc/syncd/syncd.toml"
    assert "HUP" in one["ExecReload"] and "$MAINPID" in one["ExecReload"]
    # Least privilege: its own user, no capability, no mount calls (syncd-mount@ mounts).
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"
    assert "/var/lib/syncd" in one["ReadWritePaths"].split()
    assert one["User"] == "syncd" and one["CapabilityBoundingSet"] == ""
    assert service["SystemCallFilter"][0] == "@system-service"
    assert "@mount" not in " ".join(service["SystemCallFilter"])
    assert one["MemoryDenyWriteExecute"] == "yes"
    assert "multi-user.target" in unit["Install"]["WantedBy"][-1].split()


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


@needs_systemd_analyze
def test_unit_file_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts it (pointed at this checkout's syncd)."""
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/syncd/bin/syncd",
                                                             str(SYNCD)), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_systemd_analyze
def test_unit_file_exposure_stays_low() -> None:
    """A hardening line dropped by accident shows as a higher exposure score."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                             str(UNIT)], capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze cannot judge a unit file offline: {result.stderr[:200]}")
    assert float(found.group(1)) <= 2.0, result.stdout



# -- a background task that dies -------------------------------------------------------

BROKEN_WORKER = '''
"""Installed as a syncd plugin: breaks the watched folder's worker, as a bug would."""
from syncd.triggers import watch


async def _work(self, folder):
    await folder.queue.get()
    raise RuntimeError("folder worker broke")


watch.FolderWatcher._work = _work
'''


def test_a_background_task_that_dies_stops_the_daemon_non_zero(
        tmp_path: Path, short_dir: Path, notify: Notifications) -> None:
    """systemd's Restart=on-failure restarts it, instead of a daemon with a dead part."""
    from tests.test_plugins import install

    site = tmp_path / "site"
    site.mkdir()
    install(site, "syncd_broken_worker", BROKEN_WORKER)
    root = tmp_path / "ws"
    root.mkdir()
    inbox = root / "inbox"
    extra = (f"[jobs.music.watch]\npath = {json.dumps(str(inbox))}\npatterns = ['*.csv']\n"
             f"[usb]\nenabled = false\n[api]\n"
             f"listen = {json.dumps('unix:' + str(short_dir / 'api.sock'))}\n")
    ws = Workspace(root, write_config(root, extra=extra), root / "music.csv")
    try:
        proc = ws.start("run", env={"NOTIFY_SOCKET": str(notify.path),
                                    "PYTHONPATH": os.pathsep.join(
                                        filter(None, [str(site), os.environ.get("PYTHONPATH")]))})
        notify.wait_for(proc, "READY=1", log=ws.log_tail)
        write_csv(inbox / "a.csv", 5, seed=1)
        code = proc.wait(timeout=60)
        assert code == 1, f"syncd run exited {code}\n{ws.log_tail()}"
        [died] = [r for r in log_records(ws) if r.get("task") == "watch-music"]
        assert died["level"] == "critical" and "folder worker broke" in died["error"]
        assert "systemd restarts" in died["event"]
        notify.wait_for(proc, "STOPPING=1", log=ws.log_tail)  # stopped cleanly, then exited
    finally:
        ws.close()
