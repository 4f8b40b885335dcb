"""The daily notification digest: ``[notify] digest = "daily"``.

At ``digest_at`` (UTC) every day, the runs that ended in the 24 hours before with a
status in ``[notify] on`` are read from the store and handed to the ``syncd_digest``
hook, which the notify plugin turns into one message. Reading the store (rather than
collecting runs in memory) means a restart during the day loses nothing; a daemon that
is down at ``digest_at`` sends that day's digest late (within the misfire grace) or
not at all. Per-run messages are then not sent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from syncd.adapters import RunSummary
from syncd.config.notify import NotifyConfig
from syncd.engine import Engine
from syncd.engine.announce import summarize
from syncd.store import deliveries
from syncd.store.models import utcnow

DAY = timedelta(days=1)


def digest_trigger(settings: NotifyConfig) -> CronTrigger | None:
    """When the digest fires, or None when there is none."""
    if settings.digest != "daily" or not settings.enabled:
        return None
    hour, minute = settings.digest_at.split(":")
    return CronTrigger(hour=int(hour), minute=int(minute), timezone="UTC")


async def send_digest(engine: Engine, until: datetime | None = None) -> list[RunSummary]:
    """Hand the last day's matching runs to ``syncd_digest``; returns them."""
    announce = engine.announce
    settings = announce.notify
    until = until or utcnow()
    since = until - DAY

    def collect() -> list[RunSummary]:
        runs = deliveries.finished_between(since, until, settings.on)
        return [summarize(engine.store, run) for run in runs]

    summaries = await asyncio.to_thread(collect)
    if announce.pm is None:
        return summaries
    notify = announce.notify_context()
    try:
        await asyncio.to_thread(announce.pm.hook.syncd_digest, summaries=summaries,
                                since=since, until=until, notify=notify)
    except Exception:
        announce.log.exception("the syncd_digest hook failed")
    return summaries
