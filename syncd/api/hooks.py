"""``POST /v1/hooks/{job}``: other systems start a run with a signed request (SPEC §10).

The bearer token is not needed: the body's HMAC-SHA256 under the job's webhook secret
(``X-Syncd-Signature: sha256=<hex>``) proves the sender, compared in constant time. A
delivery id (``X-Syncd-Delivery``) seen before is answered 200 with its first run and
starts nothing; the ids are kept in the store, so a restart still knows them.

The body is the sender's business and is ignored, except a JSON object's
``sourceIdentifier``: a file to read, confined like ``POST /v1/sync/trigger``'s
(watched folders, state_dir, ``[api] allowed_paths``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import structlog
from aiohttp import web

from syncd.api.context import CONTEXT
from syncd.api.envelope import ApiError, BadRequest, Conflict, NotFound, Unavailable, ok
from syncd.api.requests import MAX_BODY, confined_path
from syncd.engine import Request
from syncd.errors import RunConflict, SourceError, UserError
from syncd.store import deliveries

routes = web.RouteTableDef()
PREFIX = "/v1/hooks/"
SIGNATURE = "X-Syncd-Signature"
DELIVERY = "X-Syncd-Delivery"
MAX_DELIVERY_ID = 191
log = structlog.get_logger("syncd.webhook")
LOCK = web.AppKey("webhook_lock", asyncio.Lock)


class Unauthorized(ApiError):
    status, code = 401, "bad_signature"


def signature(secret: str, body: bytes) -> str:
    """What a sender puts in ``X-Syncd-Signature`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(
        signature(secret, body).encode(), given.strip().encode("utf-8", "replace"))


@routes.post(PREFIX + "{job}")
async def hook(request: web.Request) -> web.Response:
    c = request.app[CONTEXT]
    name = request.match_info["job"]
    job = c.setup().config.jobs.get(name)
    if job is None or job.webhook is None or name not in c.engine.plans:
        raise NotFound(f"no job {name!r} with a [jobs.{name}.webhook] section")
    if request.content_length and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY,
                                            actual_size=request.content_length)
    body = await request.read()  # over client_max_size: 413 from the middleware
    try:
        secret = job.webhook.secret.reveal()
    except LookupError as exc:
        log.error("webhook secret unreadable", job=name, error=str(exc))
        raise Unavailable(f"the webhook secret of job {name!r} cannot be read; see the "
                          "daemon's log", "secret_unavailable") from None
    if not secret or not verify(secret, body, request.headers.get(SIGNATURE)):
        log.warning("webhook refused: bad or missing signature", job=name,
                    remote=request.remote)
        raise Unauthorized(f"missing or bad {SIGNATURE} (sha256=<hex HMAC-SHA256 of the "
                           "body with the job's webhook secret>)")
    identifier = await _source_identifier(request, body)
    delivery = request.headers.get(DELIVERY, "").strip() or None
    if delivery is not None and len(delivery) > MAX_DELIVERY_ID:
        raise BadRequest(f"{DELIVERY} is longer than {MAX_DELIVERY_ID} characters",
                         "bad_field")
    async with request.app[LOCK]:  # one delivery at a time: a replay waits for its first
        return await _start(request, name, identifier, delivery)


async def _source_identifier(request: web.Request, body: bytes) -> str | None:
    try:
        parsed: Any = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: a sender's own payload, ignored
    raw = parsed.get("sourceIdentifier") if isinstance(parsed, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest("field 'sourceIdentifier' must be a string", "bad_field")
    return await asyncio.to_thread(confined_path, raw, request.app[CONTEXT].roots)


async def _start(request: web.Request, name: str, identifier: str | None,
                 delivery: str | None) -> web.Response:
    c = request.app[CONTEXT]
    claim_id = None
    if delivery is not None:
        try:
            claim_id = await asyncio.to_thread(deliveries.claim, c.store.db, name, delivery)
        except deliveries.DeliveryClaimed as seen:
            if seen.run_id is None:
                raise Conflict(f"delivery {delivery!r} is being handled; try again",
                               "delivery_in_progress") from None
            log.info("webhook delivery replayed", job=name, delivery=delivery,
                     run_id=seen.run_id)
            return ok({"syncRunId": seen.run_id, "job": name, "replayed": True})
    try:
        run_id = await c.engine.start(Request(name, "webhook", identifier))
    except BaseException as exc:
        if claim_id is not None:
            await asyncio.to_thread(deliveries.release, claim_id)
        if isinstance(exc, RunConflict):
            raise Conflict(str(exc), "already_running") from None
        if isinstance(exc, SourceError | UserError):
            raise BadRequest(str(exc), "bad_source") from None
        raise
    if claim_id is not None:
        await asyncio.to_thread(deliveries.settle, claim_id, run_id)
    log.info("webhook started a run", job=name, delivery=delivery, run_id=run_id)
    return ok({"syncRunId": run_id, "job": name, "replayed": False}, status=202)
