"""Background tasks the daemon cannot do without: one that dies brings it down.

A task started with :func:`supervise` (a folder's worker, the periodic rescan, the
lease renewal, a drive's handling) or reported with :func:`report` (a scheduled job,
the udev reader) that ends with an unexpected exception is handed to the loop's
exception handler under the key :data:`FATAL`. ``syncd run`` installs a handler that
logs it and exits non-zero, so systemd restarts the daemon instead of leaving it up
with a part of it dead. Elsewhere (tests, ``syncd sync``) asyncio's default handler
logs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

FATAL = "syncd_task"  # the key of a dead task's name in the loop's exception context

T = TypeVar("T")


def supervise(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Start ``coro`` as a task whose death (not its cancellation) is fatal."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    task.add_done_callback(_check)
    return task


def _check(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        report(task.get_name(), exc, task.get_loop())


def report(name: str, exc: BaseException, loop: asyncio.AbstractEventLoop | None = None
           ) -> None:
    """Tell the loop's exception handler that the background task ``name`` died."""
    loop = loop or asyncio.get_running_loop()
    loop.call_exception_handler({"message": f"background task {name!r} died",
                                 "exception": exc, FATAL: name})
