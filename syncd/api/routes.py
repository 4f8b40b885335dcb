"""The endpoints of SPEC §5. Handlers read input, call the engine or store, answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from syncd import __version__
from syncd.api import adhoc, adhoc_rest
from syncd.api.adhoc_table import existing_table
from syncd.api.context import CONTEXT, ApiContext
from syncd.api.envelope import BadRequest, Conflict, NotFound, Unavailable, ok
from syncd.api.events import EventHub
from syncd.api.metrics import Metrics
from syncd.api.requests import (
    confined_path,
    empty_body,
    field,
    json_body,
    query_int,
    run_id,
)
from syncd.api.serialize import error_json, run_json
from syncd.engine import Request
from syncd.engine.engine import NotCancellable
from syncd.engine.preview import load_report
from syncd.errors import JobError, RunConflict, SourceError, UserError
from syncd.terms import RUN_STATUSES, utc_iso
from syncd.triggers.schedule import next_fire_time

routes = web.RouteTableDef()
HUB = web.AppKey("events", EventHub)
METRICS = web.AppKey("metrics", Metrics)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    c = ctx(request)
    reachable = await asyncio.to_thread(c.store.ping)
    data: dict[str, Any] = {"status": "ok" if reachable else "degraded", "version": __version__,
            "uptimeSeconds": round(time.monotonic() - c.started, 3), "database": reachable,
            "shuttingDown": c.closing}
    if c.engine.fleet is not None and reachable:
        data["fleet"] = await c.engine.fleet.health()
    if not reachable:
        raise Unavailable("the database does not answer", "database_unreachable")
    return ok(data)


@routes.get("/v1/sync/stats")
async def stats(request: web.Request) -> web.Response:
    by = request.query.get("by")
    if by not in (None, "job"):
        raise BadRequest("query parameter 'by' may only be 'job'", "bad_field")
    c = ctx(request)
    data = await asyncio.to_thread(c.store.run_stats, by == "job")
    if c.engine.fleet is not None:  # which host ran what (SPEC §11)
        data["byHost"] = await asyncio.to_thread(c.engine.fleet.queue.stats_by_host)
    return ok(data)


@routes.get("/v1/sync/runs")
async def runs(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise BadRequest(f"query parameter 'status' must be one of {', '.join(RUN_STATUSES)}",
                         "bad_field")
    job = request.query.get("job") or None
    limit = query_int(request, "limit", 50, 1, 500)
    before = query_int(request, "before", None, 1, 2**62)

    store = ctx(request).store

    def page() -> dict[str, Any]:
        found, next_before = store.runs_page(limit=limit, status=status, job=job,
                                             before=before)
        return {"runs": [run_json(r) for r in found], "nextBefore": next_before}

    return ok(await asyncio.to_thread(page))


@routes.get(r"/v1/sync/{run_id:(?!(?:trigger|resume)$)[^/]+}")  # not the POST-only siblings
async def run_detail(request: web.Request) -> web.Response:
    wanted = run_id(request)

    store, state_dir = ctx(request).store, ctx(request).engine.state_dir

    def load() -> dict[str, Any] | None:
        run = store.get_run(wanted)
        if run is None:
            return None
        errors, total = store.run_errors(wanted, 1000)
        # a dry run of an export: what it would send (secrets masked), and its counts
        report = load_report(state_dir, wanted) if run.dry_run else None
        # what adapters saved for the run (a browser's screenshots, pages, traces)
        folder = state_dir / "artifacts" / str(wanted) if state_dir else None
        saved = sorted(str(p) for p in folder.iterdir()) if folder and folder.is_dir() else []
        return {**run_json(run), "errors": [error_json(e) for e in errors],
                "errorsTotal": total, **({"dryRunReport": report} if report else {}),
                **({"artifacts": saved} if saved else {})}

    data = await asyncio.to_thread(load)
    if data is None:
        raise NotFound(f"no run {wanted}")
    return ok(data)


@routes.post("/v1/sync/trigger")
async def trigger(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await json_body(request)
    job = field(body, "job", str)
    source_type = field(body, "sourceType", str)
    identifier = field(body, "sourceIdentifier", str)
    dry_run = field(body, "dryRun", bool, default=False)
    allow_mass_missing = field(body, "allowMassMissing", bool, default=False)
    if job and source_type:
        raise BadRequest("give either 'job' or 'sourceType' (an ad-hoc job), not both",
                         "bad_field")
    if not job and not source_type:
        raise BadRequest("field 'job' (a configured job) or 'sourceType' (an ad-hoc job) "
                         "is required", "missing_field")
    unknown = set(body) - TRIGGER_FIELDS
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}", "bad_field")
    if source_type:
        adhoc.check_source_type(source_type, c.setup().registry)
    source_cls = (c.setup().registry.sources[source_type] if source_type
                  else c.engine.plans[job].source_cls if job in c.engine.plans else None)
    remote = source_cls is not None and source_cls.capabilities.remote
    if identifier is not None:  # a URL for a remote source, else a file we may read
        identifier = (adhoc_rest.check_url(identifier) if remote else
                      await asyncio.to_thread(confined_path, identifier, c.roots))
    if job:
        if "options" in body:
            raise BadRequest("field 'options' is for ad-hoc jobs (sourceType)", "bad_field")
        if job not in c.engine.plans:
            raise NotFound(f"no job {job!r}; jobs: {', '.join(c.engine.plans) or 'none'}")
        request_ = Request(job, "api", identifier, dry_run,
                           allow_mass_missing=allow_mass_missing)
        extra: dict[str, Any] = {}
    else:
        make = adhoc_rest.rest_request if remote else _adhoc_request
        request_, extra = await make(c, source_type, identifier, body, dry_run,
                                     allow_mass_missing)
    try:
        new_id = await c.engine.start(request_)
    except RunConflict as exc:
        raise Conflict(str(exc), "already_running") from None
    except (SourceError, UserError) as exc:
        raise BadRequest(str(exc), "bad_source") from None
    return ok({"syncRunId": new_id, "job": request_.job, **extra}, status=202)


TRIGGER_FIELDS = frozenset({"job", "sourceType", "sourceIdentifier", "dryRun", "options",
                            "allowMassMissing"})


async def _adhoc_request(c: ApiContext, source_type: str, identifier: str | None,
                         body: dict[str, Any], dry_run: bool, allow_mass_missing: bool
                         ) -> tuple[Request, dict[str, Any]]:
    registry = c.setup().registry
    if identifier is None:
        raise BadRequest("field 'sourceIdentifier' is required for an ad-hoc job",
                         "missing_field")
    options = adhoc.parse_options(body.get("options", {}))
    source_options = adhoc.source_options(registry.sources[source_type], options)
    probe = registry.sources[source_type](source_options, identifier)
    try:  # before the 202: a mapping naming a missing column is the request's fault
        header = await asyncio.to_thread(probe.header) or []
    except (SourceError, UserError) as exc:
        raise BadRequest(f"cannot read the header of {identifier}: {exc}",
                         "bad_source") from None
    table = await asyncio.to_thread(existing_table, c.store.db, options.targetTable)
    job = adhoc.job_spec(source_type, options, header, table)
    plan = adhoc.plan_from_spec(job.spec, registry)
    return Request(plan.name, "api", identifier, dry_run, plan=plan, spec=job.spec,
                   allow_mass_missing=allow_mass_missing), job.answer


@routes.post("/v1/sync/resume")
async def resume(request: web.Request) -> web.Response:
    await empty_body(request)
    started = await ctx(request).engine.resume_all(trigger="api")
    return ok({"resumed": started}, status=202)


async def _existing_run(request: web.Request) -> Any:
    """The run a POST on ``/v1/sync/{run_id}/…`` names (its body must be empty JSON)."""
    wanted = run_id(request)
    await empty_body(request)
    run = await asyncio.to_thread(ctx(request).store.get_run, wanted)
    if run is None:
        raise NotFound(f"no run {wanted}")
    return run


@routes.post("/v1/sync/{run_id}/retry")
async def retry(request: web.Request) -> web.Response:
    c = ctx(request)
    run = await _existing_run(request)
    wanted = run.id
    if run.status != "failed":
        raise Conflict(f"run {wanted} is {run.status}; only a failed run can be retried",
                       "not_failed")
    try:
        new_id = await c.engine.retry(wanted)
    except RunConflict as exc:
        raise Conflict(str(exc), "already_running") from None
    except (JobError, SourceError) as exc:
        raise Conflict(str(exc), "cannot_retry") from None
    return ok({"syncRunId": new_id, "parentRun": wanted}, status=202)


@routes.post("/v1/sync/{run_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    c = ctx(request)
    run = await _existing_run(request)
    wanted = run.id
    try:
        status = await c.engine.cancel_run(wanted)
    except NotCancellable as exc:
        raise Conflict(str(exc), exc.code) from None
    return ok({"syncRunId": wanted, "status": status}, status=202)


@routes.get("/v1/jobs")
async def jobs(request: web.Request) -> web.Response:
    c = ctx(request)
    return ok({"jobs": await asyncio.to_thread(lambda: [_job_json(c, n) for n in c.engine.plans])})


@routes.get("/v1/jobs/{name}")
async def job_detail(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    if name not in c.engine.plans:
        raise NotFound(f"no job {name!r}")
    return ok(await asyncio.to_thread(_job_json, c, name))


def _job_json(c: ApiContext, name: str) -> dict[str, Any]:
    plan = c.engine.plans[name]
    job = plan.config
    last = c.store.last_run(name)
    options = plan.source_options
    return {
        "name": name,
        "source": {"type": plan.source_cls.name, "path": getattr(options, "path", None)},
        "target": {"type": plan.target_cls.name,
                   "table": getattr(plan.target_options, "table", None),
                   "key": list(getattr(plan.target_options, "key", []) or [])},
        "triggers": job.triggers, "schedule": job.schedule,
        "every": job.every.total_seconds() if job.every else None,
        "nextRunAt": _next_fire(job), "dependsOn": list(job.upstreams),
        "onMissing": job.on_missing, "lastRun": run_json(last) if last else None,
    }


def _next_fire(job: Any) -> str | None:
    fire = next_fire_time(job)
    return utc_iso(fire) if fire else None


@routes.get("/v1/plugins")
async def plugins(request: web.Request) -> web.Response:
    registry = ctx(request).setup().registry

    def describe(kind: str, table: Mapping[str, Any]) -> list[dict[str, str]]:
        out = []
        for name, cls in sorted(table.items()):
            origin = registry.origins[(kind, name)]
            out.append({"name": name, "description": cls.description,
                        "plugin": origin.plugin, "distribution": origin.distribution,
                        "module": cls.__module__})
        return out

    return ok({"sources": describe("source", registry.loaded("source")),
               "targets": describe("target", registry.loaded("target")),
               "failed": dict(registry.failed)})


@routes.get("/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    run = query_int(request, "run", None, 1, 2**62)
    return await request.app[HUB].stream(request, run)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    from syncd.api.openapi import spec

    return web.json_response(spec(auth=bool(ctx(request).token)))
