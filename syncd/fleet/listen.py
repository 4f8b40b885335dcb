"""``LISTEN syncd_runs`` on a connection of its own, in a thread: wakes the claimer.

Only a shortcut: when the connection cannot be made or drops, the claimer's poll still
finds every run, so errors here are logged once and retried, never fatal.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable
from typing import Any

import structlog

from syncd.store.fleet import CHANNEL

RETRY_S = 2.0


class Listener:
    def __init__(self, db: Any, wake: Callable[[], None]) -> None:
        import asyncio

        self.db, self.wake = db, wake
        self.loop = asyncio.get_running_loop()
        self.log = structlog.get_logger("syncd.fleet")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self._listen()
                failing = False
            except Exception as exc:  # the server restarted, the network dropped
                if not failing:
                    self.log.warning("LISTEN connection lost; polling meanwhile",
                                     error=str(exc).strip())
                failing = True
            self._stop.wait(RETRY_S)

    def _listen(self) -> None:
        import psycopg2
        import psycopg2.extensions

        params = {k: v for k, v in self.db.connect_params.items() if k != "options"}
        conn = psycopg2.connect(dbname=self.db.database, **params)
        try:
            conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            conn.cursor().execute(f"LISTEN {CHANNEL}")
            while not self._stop.is_set():
                ready, _, _ = select.select([conn], [], [], 1.0)
                if not ready:
                    continue
                conn.poll()
                if conn.notifies:
                    conn.notifies.clear()
                    self.loop.call_soon_threadsafe(self.wake)
        finally:
            conn.close()
