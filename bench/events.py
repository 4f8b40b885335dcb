"""The daemon's API as the benchmarks follow it: ``GET /v1/events`` (server-sent events,
each stamped as it arrived) and the ``data`` of a success envelope."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from daemonkit import BenchError


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event, stamped when it arrived."""

    kind: str
    data: dict[str, Any]
    at: float  # time.perf_counter()
    wall: float  # time.time()


class Events:
    """Follows ``GET /v1/events`` and queues every event as it arrives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.connected = asyncio.Event()

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(url, timeout=timeout) as resp:
            if resp.status != 200:
                raise BenchError(f"GET /v1/events answered HTTP {resp.status}")
            kind, data = "message", ""
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):  # the opening comment, keep-alives
                    self.connected.set()
                elif not line:
                    if data:
                        self.queue.put_nowait(
                            Event(kind, json.loads(data), time.perf_counter(), time.time())
                        )
                    kind, data = "message", ""
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        kind = value
                    elif name == "data":
                        data = f"{data}\n{value}" if data else value
        raise BenchError("GET /v1/events: the stream ended")

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next(self, wanted: Callable[[Event], bool], timeout: float) -> Event:
        """The next event ``wanted`` accepts, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            event = await asyncio.wait_for(self.queue.get(), left)
            if wanted(event):
                return event


async def api_get(session: aiohttp.ClientSession, url: str) -> Any:
    """The ``data`` of a success envelope."""
    async with session.get(url) as resp:
        body = await resp.json(content_type=None)
    if resp.status != 200 or not isinstance(body, dict) or body.get("success") is not True:
        raise BenchError(f"GET {url}: HTTP {resp.status} {json.dumps(body)[:300]}")
    return body.get("data")
