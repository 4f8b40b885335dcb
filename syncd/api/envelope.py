"""The JSON envelope of every answer, and the errors that map to its HTTP statuses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from syncd.terms import utc_iso


def now_iso() -> str:
    return utc_iso()


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def ok(data: Any, status: int = 200) -> web.Response:
    """``{"success": true, "data": …, "timestamp": …}``."""
    body = {"success": True, "data": data, "timestamp": now_iso()}
    return web.json_response(body, status=status, dumps=_dumps)


def failure(status: int, code: str, message: str,
            headers: dict[str, str] | None = None) -> web.Response:
    """``{"success": false, "error": {"code", "message"}, "timestamp": …}``."""
    body = {"success": False, "error": {"code": code, "message": message},
            "timestamp": now_iso()}
    return web.json_response(body, status=status, dumps=_dumps, headers=headers)


class ApiError(Exception):
    """Raised by a handler; the middleware answers with the envelope and status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Unavailable(ApiError):
    status, code = 503, "unavailable"
