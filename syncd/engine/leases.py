"""Renewing the claims of the runs a process executes (SPEC §6, §11).

A run's lease proves its holder alive; one that another daemon took over meanwhile
is asked to stop here, and the claim fences out whatever it would still write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from syncd.engine.runs import Stop
from syncd.store import Store


async def renew_leases(store: Store, tasks: Mapping[int, asyncio.Task[Any]],
                       stops: Mapping[int, Stop],
                       log: structlog.typing.FilteringBoundLogger) -> None:
    """Every third of a lease, renew the runs still executing; ends when none is."""
    while True:
        await asyncio.sleep(store.claims.lease_s / 3)
        running = [i for i, t in tasks.items() if not t.done()]
        if not running:
            return
        try:
            lost = await asyncio.to_thread(store.claims.renew, running)
        except Exception as exc:  # the database is away: the runs retry on their own
            log.warning("could not renew run leases", error=str(exc))
            continue
        for run_id in lost:
            log.error("run taken over by another daemon; stopping it here", run_id=run_id)
            stop = stops.get(run_id)
            if stop is not None:
                stop.request("claim_lost")
