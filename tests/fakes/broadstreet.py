"""A Broadstreet-like ad API (seed 002) as a real aiohttp server on 127.0.0.1.

Networks → advertisers, zones → advertisements → campaigns → placements, nested
under their parents' paths as Broadstreet nests them; answers wrap a record in its
singular name (``{"advertiser": {...}}``) and a list in its plural. Parent ids in the
path and references in the body (a placement's ``advertisement_id`` and ``zone_id``)
are validated: 404 for an unknown parent, 422 for an unknown reference. List
endpoints serve name lookups. ``Idempotency-Key`` is honoured (the same key gets the
same answer and creates nothing), ``access_token`` is checked when ``token`` is set,
and faults are injected per request: an error status (with ``Retry-After``), a hang,
or a create carried out whose connection then drops before the answer.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer

#: plural → (singular, parents (outermost first), body references validated)
KINDS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "networks": ("network", (), {}),
    "advertisers": ("advertiser", ("networks",), {}),
    "zones": ("zone", ("networks",), {}),
    "advertisements": ("advertisement", ("networks", "advertisers"), {}),
    "campaigns": ("campaign", ("networks", "advertisers"), {}),
    "placements": ("placement", ("networks", "advertisers", "campaigns"),
                   {"advertisement_id": "advertisements", "zone_id": "zones"}),
}


FAULT = web.RequestKey("fault", object)  # the fault a request met, for its handler


def collection_path(plural: str) -> str:
    """``/networks/{networks}/advertisers`` …: the route of a kind's list."""
    parents = KINDS[plural][1]
    return "".join(f"/{p}/{{{p}}}" for p in parents) + f"/{plural}"


@dataclass(slots=True)
class Fault:
    kind: str  # "status" | "hang" | "drop_after_create" | "hang_after_create"
    status: int = 503
    retry_after: float | None = None


@dataclass
class BroadstreetFake(ThreadedServer):
    """``with BroadstreetFake() as api:``; ``api.url`` is the base URL (``/api/1``)."""

    url_path = "/api/1"
    handler_cancellation = True  # a hung answer ends when the client gives up

    token: str | None = None  # when set, every request needs ?access_token=token
    latency: float = 0.0  # seconds added to every answer
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in KINDS})
    #: (collection path, name) → creates carried out: more than 1 is a duplicate
    creates: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: list[tuple[str, str, float]] = field(default_factory=list)  # method, path, t
    replayed: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._faults: deque[tuple[str | None, Fault]] = deque()
        self._ids = itertools.count(101)
        self._by_request: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # -- what tests look at and inject --------------------------------------------

    def seed(self, plural: str, name: str, **fields: Any) -> str:
        """A record the remote holds already (made by someone else)."""
        remote_id = str(next(self._ids))
        self.records[plural][remote_id] = {"id": int(remote_id), "name": name, **fields}
        return remote_id

    def named(self, plural: str, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records[plural].values() if r.get("name") == name]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """Names created more than once by requests (seeded records not counted)."""
        return {k: n for k, n in self.creates.items() if n > 1}

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m in ("POST", "PUT", "DELETE")]

    def fault_next(self, fault: Fault, count: int = 1, method: str | None = None) -> None:
        """The next ``count`` requests (of ``method``, when given) meet ``fault``."""
        with self._lock:
            self._faults.extend((method, fault) for _ in range(count))

    def fail_next(self, count: int = 1, status: int = 503, retry_after: float | None = None,
                  method: str | None = None) -> None:
        self.fault_next(Fault("status", status, retry_after), count, method)

    def hang_next(self, count: int = 1, method: str | None = None) -> None:
        self.fault_next(Fault("hang"), count, method)

    def drop_after_create_next(self, count: int = 1) -> None:
        self.fault_next(Fault("drop_after_create"), count, "POST")

    def hang_after_create_next(self, count: int = 1) -> None:
        self.fault_next(Fault("hang_after_create"), count, "POST")

    # -- the server ----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        for plural in KINDS:
            path = "/api/1" + collection_path(plural)
            app.router.add_get(path, self._list)
            app.router.add_post(path, self._create)
            app.router.add_get(path + "/{id}", self._get)
            app.router.add_put(path + "/{id}", self._update)
            app.router.add_delete(path + "/{id}", self._delete)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Log, authenticate, add latency and apply the next matching fault."""
        self.requests.append((request.method, request.path, time.monotonic()))
        if self.token is not None and request.query.get("access_token") != self.token:
            return web.json_response({"error": "bad access_token"}, status=401)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take(request.method)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(3600)
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            return web.Response(status=fault.status, headers=headers, text="injected fault")
        request[FAULT] = fault
        return await handler(request)  # type: ignore[no-any-return]

    def _take(self, method: str) -> Fault | None:
        with self._lock:
            for i, (wanted, fault) in enumerate(self._faults):
                if wanted is None or wanted == method:
                    del self._faults[i]
                    return fault
        return None

    def _kind(self, request: web.Request) -> tuple[str, dict[str, str] | web.Response]:
        """The kind a path names, and its parents' ids (or a 404 for an unknown parent)."""
        plural = next(p for p in request.path.split("/")[::-1]
                      if p in KINDS and p != request.match_info.get("id"))
        parents: dict[str, str] = {}
        for parent in KINDS[plural][1]:
            parent_id = request.match_info[parent]
            record = self.records[parent].get(parent_id)
            if record is None or any(record.get(f"{KINDS[p][0]}_id") != int(parents[p])
                                     for p in parents if f"{KINDS[p][0]}_id" in record):
                return plural, web.json_response(
                    {"error": f"{KINDS[parent][0]} {parent_id} not found"}, status=404)
            parents[parent] = parent_id
        return plural, parents

    async def _list(self, request: web.Request) -> web.Response:
        plural, parents = self._kind(request)
        if isinstance(parents, web.Response):
            return parents
        found = [r for r in self.records[plural].values() if _under(r, parents)]
        return web.json_response({plural: found})

    async def _get(self, request: web.Request) -> web.Response:
        plural, parents = self._kind(request)
        if isinstance(parents, web.Response):
            return parents
        record = self.records[plural].get(request.match_info["id"])
        if record is None or not _under(record, parents):
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({KINDS[plural][0]: record})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        plural, parents = self._kind(request)
        if isinstance(parents, web.Response):
            return parents
        token = request.headers.get("Idempotency-Key")
        if token and token in self._by_request:
            self.replayed += 1
            status, body = self._by_request[token]
            return web.json_response(body, status=status)
        body = await request.json()
        invalid = self._invalid(plural, body)
        if invalid:
            return web.json_response({"error": invalid}, status=422)
        remote_id = str(next(self._ids))
        record = {**body, "id": int(remote_id),
                  **{f"{KINDS[p][0]}_id": int(i) for p, i in parents.items()}}
        self.records[plural][remote_id] = record
        self.creates[(request.path, str(body.get("name")))] += 1
        answer = {KINDS[plural][0]: record}
        if token:
            self._by_request[token] = (201, answer)
        fault = request.get(FAULT)
        if fault is not None:  # created, but the answer never arrives
            if fault.kind == "drop_after_create":
                assert request.transport is not None
                request.transport.abort()
            await asyncio.sleep(3600)
        return web.json_response(answer, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        plural, parents = self._kind(request)
        if isinstance(parents, web.Response):
            return parents
        record = self.records[plural].get(request.match_info["id"])
        if record is None or not _under(record, parents):
            return web.json_response({"error": "not found"}, status=404)
        body = await request.json()
        invalid = self._invalid(plural, body)
        if invalid:
            return web.json_response({"error": invalid}, status=422)
        record.update({k: v for k, v in body.items() if k != "id"})
        return web.json_response({KINDS[plural][0]: record})

    async def _delete(self, request: web.Request) -> web.Response:
        plural, parents = self._kind(request)
        if isinstance(parents, web.Response):
            return parents
        if self.records[plural].pop(request.match_info["id"], None) is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({"deleted": True})

    def _invalid(self, plural: str, body: Any) -> str | None:
        """Why a body cannot be stored: no name, or a reference to nothing."""
        if not isinstance(body, dict) or not str(body.get("name") or "").strip():
            return "name is required"
        for field_name, kind in KINDS[plural][2].items():
            if field_name in body and str(body[field_name]) not in self.records[kind]:
                return f"{field_name} {body[field_name]} does not exist"
        return None


def _under(record: dict[str, Any], parents: dict[str, str]) -> bool:
    return all(record.get(f"{KINDS[p][0]}_id") == int(i) for p, i in parents.items())
