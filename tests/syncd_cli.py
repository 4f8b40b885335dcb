"""Running the real ``syncd`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

SYNCD = str(Path(sys.executable).with_name("syncd"))


def syncd(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``syncd ARGS`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([SYNCD, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)




def run_on_terminal(args: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdin, stdout and stderr, as a person would.

    Returns the exit code and everything written to the terminal.
    """
    primary, secondary = pty.openpty()
    process = subprocess.Popen(args, stdin=secondary, stdout=secondary, stderr=secondary,
                               env={**os.environ, "COLUMNS": "100"})
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    return process.wait(timeout=30), output.decode(errors="replace")
