"""Webhook deliveries already acted on, so that a replay starts nothing new.

A delivery is claimed (its row inserted, unique on job and delivery id) before its run
is made, so two copies arriving at once, even at two daemons of a fleet, start one run.
Rows go with their run when the run history is cleaned up.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from syncd.store.models import SyncRun, WebhookDelivery
from syncd.store.orm import pw


class DeliveryClaimed(Exception):
    """The delivery was seen before; ``run_id`` is its run (None while being made)."""

    def __init__(self, run_id: int | None) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def claim(db: pw.Database, job: str, delivery: str) -> int:
    """Record a new delivery; :class:`DeliveryClaimed` if it is a replay."""
    seen = WebhookDelivery.get_or_none(job=job, delivery=delivery)
    if seen is not None:
        raise DeliveryClaimed(seen.sync_run_id)
    try:
        with db.atomic():
            return int(WebhookDelivery.insert(job=job, delivery=delivery).execute())
    except pw.IntegrityError:
        again = WebhookDelivery.get_or_none(job=job, delivery=delivery)
        raise DeliveryClaimed(again.sync_run_id if again else None) from None


def settle(claim_id: int, run_id: int) -> None:
    """The claimed delivery started ``run_id``."""
    WebhookDelivery.update(sync_run_id=run_id).where(
        WebhookDelivery.id == claim_id).execute()


def release(claim_id: int) -> None:
    """The delivery started nothing (e.g. its job was busy): the sender may try again."""
    WebhookDelivery.delete().where(WebhookDelivery.id == claim_id).execute()


def forget_runs(run_ids: Iterable[int]) -> None:
    """Drop the deliveries of runs that the cleanup removes."""
    ids = list(run_ids)
    if ids:
        WebhookDelivery.delete().where(WebhookDelivery.sync_run_id.in_(ids)).execute()


def finished_between(since: datetime, until: datetime,
                     statuses: Iterable[str]) -> list[SyncRun]:
    """Runs that ended in ``[since, until)`` with one of ``statuses``, oldest first
    (for the daily notification digest)."""
    return list(SyncRun.select().where(
        SyncRun.completed_at >= since, SyncRun.completed_at < until,
        SyncRun.status.in_(list(statuses))).order_by(SyncRun.id))
