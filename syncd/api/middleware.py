"""Middlewares: the envelope for every error, bearer auth, and 503 while stopping."""

from __future__ import annotations

import hmac
import json

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from syncd.api.context import CONTEXT
from syncd.api.envelope import ApiError, failure
from syncd.api.requests import MAX_BODY

OPEN_PATHS = frozenset({"/v1/health"})
#: the status page and its files hold no data; a webhook proves itself by its signature
OPEN_PREFIXES = ("/static/", "/v1/hooks/")


def is_open(path: str) -> bool:
    """Needs no bearer token."""
    return path in OPEN_PATHS or path == "/" or path.startswith(OPEN_PREFIXES)
log = structlog.get_logger("syncd.api")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers in the envelope with its status; never a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return failure(exc.status, exc.code, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return failure(413, "too_large", f"the body is over {MAX_BODY // 1024} KiB")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return failure(405, "method_not_allowed", f"use {allowed}",
                       headers={"Allow": allowed})
    except web.HTTPNotFound:
        return failure(404, "not_found", f"no endpoint {request.path}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return failure(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except json.JSONDecodeError as exc:
        return failure(400, "bad_json", f"the body is not JSON: {exc.msg}")
    except (ConnectionResetError, web.HTTPServiceUnavailable):
        raise
    except Exception:
        log.exception("API request failed", method=request.method, path=request.path)
        return failure(500, "internal", "internal error; see the daemon's log")


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Authorization: Bearer <token>`` on everything but ``is_open``, when a token is set."""
    token = request.app[CONTEXT].token
    if token and not is_open(request.path):
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.strip().encode(), token.encode()):
            return failure(401, "unauthorized", "a valid bearer token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="syncd"'})
    return await handler(request)


@web.middleware
async def closing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While the daemon stops, say so instead of starting new work."""
    if request.app[CONTEXT].closing and request.path not in OPEN_PATHS:
        return failure(503, "shutting_down", "the daemon is shutting down",
                       headers={"Retry-After": "5"})
    return await handler(request)
