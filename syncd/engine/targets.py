"""Opening a run's target: a store target as it is, a record target behind the outbox.

The executor then drives both alike: ``write`` a batch, ``reconcile`` after a full
read, ``close``. A store target writes inside the batch's transaction; the outbox
sends first and ``settle``s the results in the transaction of the run's counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from syncd.adapters import AsyncRecordTarget, RecordTarget, RunContext, Target, TargetSchema
from syncd.engine.outbox import Outbox
from syncd.engine.plan import JobPlan
from syncd.engine.preview import DryRunPlan, Report
from syncd.remote.http import HttpFactory
from syncd.store import Store, idmap
from syncd.store.sql_session import StoreSqlSession

Writer = Target | Outbox


def in_transaction(writer: Writer) -> bool:
    """Does the writer write into the store's database, in the batch's transaction?"""
    return isinstance(writer, Target) and writer.capabilities.store


def run_context(plan: JobPlan, store: Store, *, run_id: int,
                log: structlog.typing.FilteringBoundLogger, state_dir: Path | None,
                dry_run: bool, cancelled: Any, sql: bool = False,
                http: HttpFactory | None = None,
                previous_checkpoint: Mapping[str, Any] | None = None,
                started_at: datetime | None = None) -> RunContext:
    """The context handed to the run's source and target; ``sql`` only to store targets
    and store sources."""
    return RunContext(run_id=run_id, job=plan.name, log=log, state_dir=state_dir,
                      dry_run=dry_run, cancelled=cancelled,
                      http=http or HttpFactory(state_dir=state_dir),
                      previous_checkpoint=previous_checkpoint, started_at=started_at,
                      sql=StoreSqlSession(store.db, store.dialect, plan.name) if sql else None,
                      idmap=JobIdMap(plan.name))


@dataclass(frozen=True, slots=True)
class JobIdMap:
    """``ctx.idmap``: one job's id map, read-only."""

    job: str

    def known(self, remote_ids: Sequence[str]) -> set[str]:
        return idmap.known_remote(self.job, list(remote_ids))

    def entries(self, local_keys: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        found = idmap.entries(self.job, list(local_keys))
        return {k: (e.remote_id, e.content_hash) for k, e in found.items()
                if e.state == "synced"}


def open_target(plan: JobPlan, schema: TargetSchema, store: Store, *,
                report: bool = False, dry_plan: DryRunPlan | None = None,
                **context: Any) -> Writer:
    """Make and open the job's target with the run's context; ``report``: a dry run's
    report of what a record target would send (``syncd.engine.preview``)."""
    target = plan.make_target()
    store_target = isinstance(target, Target) and target.capabilities.store
    ctx = run_context(plan, store, sql=store_target, **context)
    if isinstance(target, RecordTarget | AsyncRecordTarget):
        pair = plan.pair if plan.pair is not None and plan.pair.role == "export" else None
        outbox = Outbox(target, schema, ctx, references=dict(plan.config.references),
                        pair=pair, dry_plan=dry_plan,
                        report=Report(plan.name, ctx.run_id) if report and ctx.dry_run
                        else None)
        outbox.open()
        return outbox
    target.open(schema, ctx)
    return target
