"""Server-sent events: the engine's run events fanned out to every ``/v1/events`` client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

KEEPALIVE_S = 15.0
QUEUE_SIZE = 1000
NAMES = {"run_started", "progress", "error", "run_finished"}


class EventHub:
    """An engine listener; each subscriber gets its own bounded queue."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[tuple[str, dict[str, Any]] | None]] = set()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind not in NAMES:
            return
        event = {"runId": data["run_id"], **{k: v for k, v in data.items() if k != "run_id"}}
        for queue in list(self.subscribers):
            if queue.full():  # a slow client loses its oldest events, never blocks the engine
                queue.get_nowait()
            queue.put_nowait((kind, event))

    def close(self) -> None:
        for queue in list(self.subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    async def stream(self, request: web.Request, run: int | None) -> web.StreamResponse:
        """Write events to ``request`` until the client leaves or the daemon stops."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        try:
            await response.prepare(request)
            await response.write(b": syncd events\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                kind, data = item
                if run is not None and data.get("runId") != run:
                    continue
                payload = json.dumps(data, default=str)
                await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.subscribers.discard(queue)
        return response
