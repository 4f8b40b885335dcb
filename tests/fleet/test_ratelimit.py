"""A remote's rate limit holds across daemons: the window lives in PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from syncd.fleet.ratelimit import FleetRateLimit, install
from syncd.remote import limits
from syncd.store import Store
from syncd.store.claims import Claims
from tests.conftest import BACKENDS

COUNT, PERIOD = 5, 1.0


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
def test_three_daemons_together_stay_within_the_limit(store: Store) -> None:
    # three "daemons": each its own limiter object, threads with their own connections
    daemons = [FleetRateLimit(Store(store.db, Claims(f"d{i}:1")), "api", COUNT, PERIOD)
               for i in range(3)]
    starts: list[float] = []
    lock = threading.Lock()

    def requests(limit: FleetRateLimit) -> None:
        for _ in range(8):
            while (mark := limit.try_start()) is not None and mark < 0:
                time.sleep(-mark)  # as HttpClient does, on its loop
            now = float(store.db.execute_sql("SELECT EXTRACT(EPOCH FROM "
                                             "clock_timestamp())::float8").fetchone()[0])
            with lock:
                starts.append(now)
        store.db.close()

    threads = [threading.Thread(target=requests, args=(d,)) for d in daemons]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 24
    # in any window of the limit's length, at most the limit plus one start (SPEC §7)
    for i, first in enumerate(starts):
        inside = [s for s in starts[i:] if s < first + PERIOD - 0.01]
        assert len(inside) <= COUNT + 1, starts
    assert starts[-1] - starts[0] >= (24 / COUNT - 1) * PERIOD - 0.5  # it did spread them


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
def test_installed_in_a_fleet_every_remote_limit_is_fleet_wide(store: Store) -> None:
    saved = limits.factory
    try:
        install(store)
        assert isinstance(limits.shared("crm", "10/s"), FleetRateLimit)
    finally:
        limits.factory = saved
        limits._SHARED.clear()
    assert not isinstance(limits.shared("crm", "10/s"), FleetRateLimit)
