"""A fake music catalog API (seed 003, Example 2): a real aiohttp server on 127.0.0.1.

Every pagination style has its own path, each answering ``{"data": {"items": [...]}}``
plus what the style needs to find the next page:

    GET /music/catalog, /catalog/page   ?page=N&limit=L (first page 1)
    GET /catalog/offset                 ?offset=N&limit=L
    GET /catalog/cursor                 ?cursor=C&limit=L; ``next_cursor`` in the answer
    GET /catalog/link                   ?page=N&limit=L; the next page in a ``Link`` header
    GET /catalog/next                   ``next`` in the answer: a URL relative to the host
    GET /catalog/list                   the records as a bare list, pages as /catalog/page
    GET /catalog/all                    every record at once
    POST /catalog/search                {"page": N, "limit": L} in the JSON body

Every path takes ``updated_since`` (records whose ``updated_at`` ≥ it). Faults are
queued per request to come: a status (with ``Retry-After``), or a slow answer; ``latency``
delays every page. ``loop`` breaks a style on purpose (a repeated cursor, next URL or
page) to exercise pagination guards. ``token`` requires ``Authorization: Bearer``.
The server runs on a loop of its own in a thread, so sync and async tests can use it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer

DEFAULT_LIMIT = 10


def make_records(count: int, start: int = 1) -> list[dict[str, Any]]:
    """Songs with nested artists and tags, updated one second apart."""
    return [{"id": f"t{i}", "name": f"Song {i}", "category": ("pop", "rock", "jazz")[i % 3],
             "artist": {"name": f"Artist {i % 7}", "country": "DE"},
             "tags": [f"tag{i}", "music"], "updated_at": f"2024-01-01T00:{i // 60:02d}:"
                                                         f"{i % 60:02d}Z"}
            for i in range(start, start + count)]


@dataclass(slots=True)
class Fault:
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0  # a slow answer (seconds) instead of an error when status is 200


@dataclass
class Catalog(ThreadedServer):
    """Start with ``with Catalog(records) as catalog:``; ``catalog.url`` is its base URL."""

    records: list[dict[str, Any]] = field(default_factory=lambda: make_records(25))
    token: str | None = None  # bearer token required when set
    latency: float = 0.0  # seconds added to every page
    loop: str | None = None  # "cursor" | "next" | "page": a broken server, repeating itself
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.auth_headers: list[str] = []  # Authorization headers received

    # -- control ------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503,
                  retry_after: str | None = None) -> None:
        with self._lock:
            self._faults.extend(Fault(status, retry_after) for _ in range(count))

    def slow_next(self, count: int = 1, delay: float = 1.0) -> None:
        with self._lock:
            self._faults.extend(Fault(200, None, delay) for _ in range(count))

    def pages(self, path: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        """Requests answered so far (optionally only those of ``path``)."""
        with self._lock:
            return [r for r in self.requests if path is None or r[1] == path]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.auth_headers.clear()

    # -- the server ----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        for style in ("page", "offset", "cursor", "link", "next", "list", "all"):
            app.router.add_get(f"/catalog/{style}", self._answer)
        app.router.add_get("/music/catalog", self._answer)
        app.router.add_post("/catalog/search", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        if request.method == "POST":
            query.update({k: str(v) for k, v in (await request.json()).items()})
        with self._lock:
            self.requests.append((request.method, request.path, query))
            self.auth_headers.append(request.headers.get("Authorization", ""))
            fault = self._faults.popleft() if self._faults else None
        if self.token is not None and \
                request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if fault is not None and fault.status != 200:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=fault.status, headers=headers, text="injected fault")
        delay = self.latency + (fault.delay if fault else 0.0)
        if delay:
            await asyncio.sleep(delay)
        return self._page(request, query)

    def _page(self, request: web.Request, query: dict[str, str]) -> web.StreamResponse:
        since = query.get("updated_since")
        records = [r for r in self.records if since is None or r["updated_at"] >= since]
        limit = int(query.get("limit", DEFAULT_LIMIT))
        style = request.path.rsplit("/", 1)[-1]
        if style == "all":
            return web.json_response({"data": {"items": records}})
        if style == "offset":
            offset = int(query.get("offset", 0))
        elif style == "cursor":
            offset = 0 if self.loop == "cursor" else int(query.get("cursor") or 0)
        elif style == "next":
            offset = int(query.get("from", 0))
        else:
            page = 1 if self.loop == "page" else int(query.get("page", 1))
            offset = (page - 1) * limit
        items = records[offset:offset + limit]
        more = offset + limit < len(records)
        if style == "list":
            return web.json_response(items)
        body: dict[str, Any] = {"data": {"items": items}, "total": len(records)}
        following = offset + limit if more else None
        if style == "cursor":
            body["next_cursor"] = str(limit if self.loop == "cursor" else following) \
                if more else None
        headers = {}
        if style == "next" and more:
            start = limit if self.loop == "next" else following
            body["next"] = f"/catalog/next?from={start}&limit={limit}"
            if since:
                body["next"] += f"&updated_since={since}"
        if style == "link" and more:
            page = int(query.get("page", 1)) + 1
            url = request.url.with_query({**query, "page": str(page)})
            headers["Link"] = f'<{url}>; rel="next", <{request.url}>; rel="self"'
        return web.json_response(body, headers=headers)
