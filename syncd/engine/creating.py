"""Creating (or continuing) a run's record, so that a created run is always started.

The record is made in a worker thread. A caller cancelled meanwhile (a scheduler
stopping, an API client hanging up) cannot stop that thread, and the run would stay
``pending`` until the next start: so the work goes on, shielded, and the run is started
when it is made, whoever still waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from syncd.adapters import AsyncSource, Source
from syncd.engine.plan import JobPlan
from syncd.errors import RunConflict

if TYPE_CHECKING:
    from syncd.engine.engine import Engine, Request


async def create_and_start(engine: Engine, plan: JobPlan, source: Source | AsyncSource,
                           request: Request, resume: bool, start: Callable[[int], None],
                           abandon: Callable[[], None]) -> int:
    """The run's id, once made and handed to ``start``; ``abandon`` if none was made."""
    made = asyncio.ensure_future(asyncio.to_thread(_create_or_continue, engine, plan,
                                                   source, request, resume))

    def started_late(done: asyncio.Future[int]) -> None:
        if done.cancelled() or done.exception() is not None:
            abandon()
        else:
            start(done.result())

    try:
        run_id = await asyncio.shield(made)
    except asyncio.CancelledError:
        made.add_done_callback(started_late)  # the caller is gone: the run is not
        raise
    except BaseException:
        abandon()
        raise
    start(run_id)
    return run_id


def _create_or_continue(engine: Engine, plan: JobPlan, source: Source | AsyncSource,
                        request: Request, resume: bool) -> int:
    store = engine.store
    if resume and not request.dry_run:
        run = store.find_unfinished(plan.name, source.identifier)
        if run is not None:
            holder = store.claims.claim(run.id)
            if holder is not None:
                raise RunConflict(f"run {run.id} of job {plan.name!r} is being executed "
                                  f"by {holder}")
            engine.log.info("continuing interrupted run", run_id=run.id, job=plan.name)
            return run.id
    return store.create_run(job=plan.name, trigger=request.trigger,
                            source_type=plan.source_cls.name,
                            source_identifier=source.identifier,
                            dry_run=request.dry_run, job_spec=request.spec,
                            device=request.device,
                            affinity=engine.affinity(request.trigger, source.identifier)
                            if engine.affinity else None)
