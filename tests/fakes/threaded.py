"""Serving an aiohttp app on 127.0.0.1 from a thread of its own, for sync and async tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class ThreadedServer:
    """Base of a fake: ``with Fake() as fake:`` serves ``fake.app()`` at ``fake.url``."""

    url = ""
    #: appended to the served address (``/api/1`` for an API under a prefix)
    url_path = ""
    #: cancel a handler whose client went away (fakes that hang answers)
    handler_cancellation = False

    def app(self) -> web.Application:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None,
                                     handler_cancellation=self.handler_cancellation)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{self.url_path}"
