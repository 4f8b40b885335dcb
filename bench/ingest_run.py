"""Running one contender of bench/ingest.py: a subprocess, its wall time and its rusage."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 25


@dataclass
class Proc:
    """One measured subprocess."""

    ok: bool
    seconds: float
    rss_kib: int
    cpu_seconds: float
    written_mb: float  # MB this process had written to storage (ru_oublock, 512-byte units)
    error: str = ""


def say(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def measure(cmd: list[str], log_path: Path, timeout: float, env: dict[str, str]) -> Proc:
    """Run cmd with its output appended to log_path; wall time and rusage of that child only."""
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        log.flush()
        start = log.tell()
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _kill_group(proc.pid)

        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return Proc(False, 0.0, 0, 0.0, 0.0, f"cannot start: {exc}")
        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: do not leave the child running in its own session
            _kill_group(proc.pid)
            os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
    result = Proc(
        ok=code == 0,
        seconds=seconds,
        rss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        written_mb=usage.ru_oublock * 512 / 1e6,
    )
    if timed_out.is_set():
        result.ok, result.error = False, f"timed out after {timeout:.0f} s"
    elif code != 0:
        result.error = f"exit code {code}"
    if not result.ok:
        with open(log_path, "rb") as tail_of_log:
            tail_of_log.seek(start)
            tail = tail_of_log.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        say(f"  FAILED ({result.error}): {' '.join(cmd)}\n  --- log tail ({log_path}) ---")
        for line in tail:
            say(f"  | {line}")
    return result


def inherited_rss_mb(workdir: Path) -> float:
    """Peak RSS reported for /bin/true spawned from here: the floor under every RSS figure.

    Linux counts the RSS of the spawning process in a child's ru_maxrss (exec records the
    old address space's high-water mark), so no child can be reported below this.
    """
    true = shutil.which("true") or "/bin/true"
    proc = measure([true], workdir / "launcher.log", 60, dict(os.environ))
    return proc.rss_kib / 1024


def tool_version(cmd: list[str]) -> str:
    """First line of ``cmd``'s output, or why it could not run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if out.returncode == 0 and text else f"unavailable (exit {out.returncode})"
