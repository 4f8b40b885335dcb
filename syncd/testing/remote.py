"""An in-memory remote for adapter tests: a real aiohttp server on 127.0.0.1.

It holds records in a dict and speaks a small REST dialect: ``POST /items`` creates
(and honours ``Idempotency-Key``), ``GET /items?key=K`` looks up, ``PUT`` and
``DELETE /items/{id}`` change and remove. Faults are injected per request to come:
an error status (with ``Retry-After``), a hang, or a create that is carried out but
whose answer never arrives — the instant a naive client creates a record twice.
It runs on a loop of its own in a thread, so both sync and async code can use it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(slots=True)
class Fault:
    kind: str  # "status" | "hang" | "die_after_create"
    status: int = 503
    retry_after: float | None = None


@dataclass
class MemoryRemote:
    """Start with ``with MemoryRemote() as remote:``; ``remote.url`` is its base URL."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    replayed: int = 0  # creates answered from an earlier Idempotency-Key
    url: str = ""

    def __post_init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._ids = itertools.count(1)
        self._by_request: dict[str, str] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="memory-remote", daemon=True)
        self._runner: web.AppRunner | None = None

    # -- faults -------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503,
                  retry_after: float | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault("status", status, retry_after) for _ in range(count))

    def hang_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault("hang") for _ in range(count))

    def die_after_create_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(Fault("die_after_create") for _ in range(count))

    def by_key(self, key: str) -> list[dict[str, Any]]:
        return [item for item in self.items.values() if item.get("key") == key]

    # -- the server ----------------------------------------------------------------

    def __enter__(self) -> MemoryRemote:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the memory remote did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        # requests still held (``hang_next``) end here, not with the loop
        held = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/items", self._create)
        app.router.add_get("/items", self._lookup)
        app.router.add_put("/items/{id}", self._update)
        app.router.add_delete("/items/{id}", self._delete)
        # a request held by ``hang_next`` is cut off at exit rather than waited for
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _fault(self, request: web.Request) -> Fault | web.Response | None:
        """The fault this request meets: an answer to give at once, or one to act on."""
        self.requests.append((request.method, request.path_qs))
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is None or fault.kind == "die_after_create":
            return fault
        if fault.kind == "hang":
            await asyncio.sleep(3600)
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
        return web.Response(status=fault.status, headers=headers, text="injected fault")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        fault = await self._fault(request)
        if isinstance(fault, web.Response):
            return fault
        body = await request.json()
        token = request.headers.get("Idempotency-Key")
        if token and token in self._by_request:
            self.replayed += 1
            return web.json_response(self.items[self._by_request[token]], status=200)
        remote_id = f"r{next(self._ids)}"
        self.items[remote_id] = {**body, "id": remote_id}
        if token:
            self._by_request[token] = remote_id
        if fault is not None:  # carried out, but the answer is lost on the way
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        return web.json_response(self.items[remote_id], status=201)

    async def _lookup(self, request: web.Request) -> web.Response:
        fault = await self._fault(request)
        if isinstance(fault, web.Response):
            return fault
        return web.json_response(self.by_key(request.query.get("key", "")))

    async def _update(self, request: web.Request) -> web.Response:
        fault = await self._fault(request)
        if isinstance(fault, web.Response):
            return fault
        remote_id = request.match_info["id"]
        if remote_id not in self.items:
            return web.json_response({"error": "no such item"}, status=404)
        self.items[remote_id] = {**await request.json(), "id": remote_id}
        return web.json_response(self.items[remote_id])

    async def _delete(self, request: web.Request) -> web.Response:
        fault = await self._fault(request)
        if isinstance(fault, web.Response):
            return fault
        self.items.pop(request.match_info["id"], None)
        return web.Response(status=204)
