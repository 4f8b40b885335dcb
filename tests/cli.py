"""Running the real ``syncd`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SYNCD = str(Path(sys.executable).with_name("syncd"))


def syncd(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``syncd ARGS`` and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([SYNCD, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0,
               interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        threading.Event().wait(interval)
