"""Schedules in a fleet: every daemon's scheduler fires, one run per job and fire time.

Fire times are aligned for every daemon alike (cron times; ``every`` counted from the
Unix epoch), so all daemons agree on which tick a fire belongs to; the first to insert
the ``(job, fire_time)`` row of ``sync_schedule_ticks`` creates the run, in the same
transaction, and the others find the row taken.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

from syncd.config.schema import JobConfig
from syncd.engine import Engine, Request
from syncd.errors import RunConflict
from syncd.store.orm import pw

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fire_time(job: JobConfig | None, now: datetime | None = None) -> datetime:
    """The tick a fire happening at ``now`` belongs to (naive UTC, as stored).

    A callback runs just after its tick, never before: the tick is ``now`` rounded
    down to the interval (``every``) or to the minute (cron, whose unit is a minute).
    """
    now = now or datetime.now(UTC)
    if job is not None and job.every:
        step = job.every.total_seconds()
        ticks = math.floor((now - EPOCH).total_seconds() / step + 1e-6)
        moment = EPOCH + timedelta(seconds=ticks * step)
    else:
        moment = now.replace(second=0, microsecond=0)
    return moment.astimezone(UTC).replace(tzinfo=None)


async def fire_in_fleet(engine: Engine, name: str, job: JobConfig) -> int | None:
    """Queue the run of this tick unless another daemon did: the run id, or None."""
    assert engine.fleet is not None
    tick = fire_time(job)
    plan = engine.plans[name]
    source = plan.make_source(None)
    try:
        return await engine.fleet.enqueue(plan, source.identifier, Request(name, "schedule"),
                                          tick=tick)
    except RunConflict:  # the run of an earlier tick is still going: coalesced
        return None


async def first_in_fleet(engine: Engine, chore: str) -> bool:
    """Whether this daemon does a fleet-wide chore of this tick (always, without a fleet)."""
    if engine.fleet is None:
        return True
    try:
        return await asyncio.to_thread(engine.fleet.queue.take_tick, f"@{chore}",
                                       fire_time(None))
    except pw.PeeweeException:  # the database is away: the next tick tries again
        return False
