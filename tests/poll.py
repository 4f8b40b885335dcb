"""Waiting in tests: poll a condition with a deadline, never a bare sleep.

``wait_until`` for plain code (subprocesses, files, databases), ``wait_for`` on the
event loop (conditions may be coroutines).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               message: Callable[[], str] = lambda: "") -> Any:
    """Poll ``condition`` until it returns something true, and return that.

    Fails after ``timeout`` seconds with ``message()``; ``condition`` may itself raise
    ``AssertionError`` (e.g. when the process under test died). Never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s {message()}")
        threading.Event().wait(interval)
    return result


async def wait_for(condition: Callable[[], Any], timeout: float = 10.0,
                   interval: float = 0.01) -> Any:
    """Poll ``condition`` (plain or async) until it returns something true; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
