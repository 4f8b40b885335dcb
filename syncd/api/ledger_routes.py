"""The ledger endpoints of SPEC §5/§8: an export job's id map, the conflict queue, and
``check`` (can a job's source and target be reached), over the same functions the
``syncd idmap``/``conflicts``/``resolve``/``check`` commands use."""

from __future__ import annotations

import asyncio

from aiohttp import web

from syncd.api.context import CONTEXT, ApiContext
from syncd.api.envelope import BadRequest, Conflict, NotFound, ok
from syncd.api.requests import empty_body, field, json_body, query_int
from syncd.engine import ledger
from syncd.engine.check import check_job
from syncd.store.conflicts import AlreadyResolved, UnknownConflict
from syncd.store.models import CONFLICT_STATUSES, ID_MAP_STATES, KEEP

ledger_routes = web.RouteTableDef()


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def _job(request: web.Request) -> str:
    """The configured job the path names; 404 for any other."""
    c, name = _ctx(request), request.match_info["name"]
    if name not in c.engine.plans:
        raise NotFound(f"no job {name!r}; jobs: {', '.join(c.engine.plans) or 'none'}")
    return name


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise BadRequest(f"query parameter {name!r} must be one of {', '.join(allowed)}",
                         "bad_field")
    return value


@ledger_routes.get("/v1/jobs/{name}/idmap")
async def idmap(request: web.Request) -> web.Response:
    job = _job(request)
    state = _choice(request, "state", ID_MAP_STATES)
    limit = query_int(request, "limit", 100, 1, 1000)
    before = query_int(request, "before", None, 1, 2**62)
    return ok(await asyncio.to_thread(ledger.idmap_page, job, state, limit, before))


@ledger_routes.post("/v1/jobs/{name}/check")
async def check(request: web.Request) -> web.Response:
    job = _job(request)
    await empty_body(request)
    c = _ctx(request)
    report = await check_job(c.engine.plans[job], c.store, c.setup().state_dir,
                            http=c.engine.http)
    return ok(report.json())


@ledger_routes.get("/v1/conflicts")
async def conflicts(request: web.Request) -> web.Response:
    status = _choice(request, "status", CONFLICT_STATUSES)
    job = request.query.get("job") or None
    limit = query_int(request, "limit", 100, 1, 1000)
    before = query_int(request, "before", None, 1, 2**62)
    return ok(await asyncio.to_thread(ledger.conflicts_page, status, job, limit, before))


@ledger_routes.post("/v1/conflicts/{conflict_id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    raw = request.match_info["conflict_id"]
    wanted = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= wanted <= 2**62:
        raise BadRequest("a conflict id is a positive integer", "bad_field")
    body = await json_body(request)
    keep = field(body, "keep", str, required=True)
    if keep not in KEEP:
        raise BadRequest(f"field 'keep' must be one of {', '.join(KEEP)}", "bad_field")
    unknown = set(body) - {"keep"}
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}", "bad_field")
    try:
        data = await asyncio.to_thread(ledger.resolve, wanted, keep)
    except UnknownConflict as exc:
        raise NotFound(str(exc)) from None
    except AlreadyResolved as exc:
        raise Conflict(str(exc), "already_resolved") from None
    return ok(data)
