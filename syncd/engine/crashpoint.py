"""Tests only: kill -9 the process between a create's answer and its commit, once per
marker file named by ``SYNCD_TEST_CRASH_BEFORE_SETTLE`` (made just before the kill)."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

from syncd.store.idmap import Settled

CRASH_BEFORE_SETTLE = "SYNCD_TEST_CRASH_BEFORE_SETTLE"


def before_settle(settled: Sequence[Settled]) -> None:
    marker = os.environ.get(CRASH_BEFORE_SETTLE)
    if not marker or not any(s.state == "synced" and s.remote_id for s in settled):
        return
    path = Path(marker)
    if not path.exists():
        path.touch()
        os.kill(os.getpid(), signal.SIGKILL)
