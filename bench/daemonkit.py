"""What the daemon benchmarks share: a ``syncd run`` subprocess and waiting for its API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import aiohttp

BIN = Path(sys.executable).parent
LOG_TAIL_LINES = 25
HEALTH_TIMEOUT = 60.0  # seconds for the daemon to answer GET /v1/health
STOP_TIMEOUT = 60.0  # seconds for the daemon to exit after SIGTERM


class BenchError(Exception):
    """A step failed; the message says which and why."""


def say(message: str) -> None:
    """Progress line on stderr."""
    print(message, file=sys.stderr, flush=True)


def toml_str(path: Path) -> str:
    """A path as the inside of a TOML basic string."""
    return str(path).replace("\\", "\\\\").replace('"', '\\"')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iso_time(value: object) -> float | None:
    """An ISO-8601 timestamp from the API as a POSIX time, if it parses."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Daemon:
    """``syncd run`` as a subprocess in its own session, output appended to a log file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def start(self) -> None:
        """Spawn the daemon."""
        cmd = [str(BIN / "syncd"), "run", "--config", str(self.config)]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} $ {' '.join(cmd)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            try:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, SYNCD_CONFIG=str(self.config)),
                    start_new_session=True,
                )
            except OSError as exc:
                raise BenchError(f"cannot start {cmd[0]}: {exc}") from None

    def exited(self) -> int | None:
        """The exit code if the daemon has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the daemon so far (all its threads), Linux only."""
        if self.proc is None:
            return None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self) -> list[str]:
        """The last lines the daemon wrote since it was started."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-LOG_TAIL_LINES:]

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL the session if it does not exit; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                say(f"  daemon did not exit {STOP_TIMEOUT:.0f} s after SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                return None
        return self.proc.returncode


async def wait_healthy(session: aiohttp.ClientSession, base: str, daemon: Daemon) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if (code := daemon.exited()) is not None:
            raise BenchError(f"syncd run exited with code {code} before answering /v1/health")
        try:
            async with session.get(base + "/v1/health") as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.1)
    raise BenchError(f"GET /v1/health did not answer 200 within {HEALTH_TIMEOUT:.0f} s ({last})")


def isolate_value(choice: str) -> str:
    """A ``--isolate-runs`` choice as the TOML value of ``[daemon] isolate_runs``."""
    return '"auto"' if choice == "auto" else choice
