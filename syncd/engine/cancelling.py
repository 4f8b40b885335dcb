"""Cancelling a run, wherever it is: running here, waiting, or held elsewhere."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from syncd.engine.locks import RunLock
from syncd.errors import RunConflict
from syncd.terms import UNFINISHED

if TYPE_CHECKING:
    from syncd.engine.engine import Engine


class NotCancellable(RunConflict):
    """A run that cannot be cancelled from here; ``code`` says why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def cancel_run(engine: Engine, run_id: int) -> str:
    """``cancelling`` when it runs here (it stops after its batch), ``cancelled`` when
    it waited to be resumed and nothing ran it; else :class:`NotCancellable`."""
    run = await asyncio.to_thread(engine.store.get_run, run_id)
    if run is None:
        raise NotCancellable(f"no run {run_id}", "not_found")
    if run.status not in UNFINISHED:  # even while its task winds down here
        raise NotCancellable(f"run {run_id} is already {run.status}", "not_cancellable")
    if engine.cancel(run_id):
        return "cancelling"
    lock = RunLock(engine.state_dir, run.job, run.source_identifier)
    if await asyncio.to_thread(lock.held_elsewhere):
        raise NotCancellable(f"run {run_id} is running in another process (a `syncd "
                             "sync`?); stop it there", "running_elsewhere")
    holder = await asyncio.to_thread(engine.store.claims.claim, run_id)
    if holder is not None:  # another daemon on this database executes it
        raise NotCancellable(f"run {run_id} is being executed by {holder}; stop it there",
                             "running_elsewhere")
    await engine._conclude(run_id, run.job, "cancelled", "cancelled on request")
    return "cancelled"
