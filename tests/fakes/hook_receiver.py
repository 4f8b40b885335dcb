"""A real aiohttp server that receives notification webhooks, for the notify tests.

It records every JSON body it is sent; ``fail_next`` makes it answer 503 that many
times first (a receiver having a bad moment).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class HookReceiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_next = 0
        self.attempts = 0
        self.arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self.server = TestServer(app, host="127.0.0.1")

    async def start(self) -> HookReceiver:
        await self.server.start_server()
        return self

    async def close(self) -> None:
        await self.server.close()

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))

    async def _receive(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503, text="busy")
        self.received.append(json.loads(await request.read()))
        self.paths.append(request.path)
        self.arrived.set()
        return web.Response(status=204)
