"""Reading request input: JSON bodies, query parameters and paths, with 400s naming the field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, overload

from aiohttp import web

from syncd.api.envelope import BadRequest

MAX_BODY = 64 * 1024


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``)."""
    if request.content_length and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY,
                                            actual_size=request.content_length)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
        # a lone surrogate (``"\\ud800"``) parses, but is no text: refuse it here, once
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise BadRequest("the body is nested too deeply", "bad_json") from None
    except UnicodeEncodeError:
        raise BadRequest("the body holds a lone surrogate (\\ud800-\\udfff) in a string",
                         "bad_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}", "bad_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", "bad_json")
    return body


async def empty_body(request: web.Request) -> None:
    """The body of an action that takes no input: nothing, or ``{}``."""
    body = await json_body(request)
    if body:
        raise BadRequest(f"unknown field {sorted(body)[0]!r}; this action takes no fields",
                         "bad_field")


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *,
          required: bool = False, default: Any = None) -> Any:
    """``body[name]`` checked against ``kind``; a 400 naming the field otherwise.

    An explicit ``null`` is a wrong type, as the OpenAPI document says: leave the field out.
    """
    if name not in body:
        if required:
            raise BadRequest(f"field {name!r} is required", "missing_field")
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(_json_type(k) for k in kinds)
        raise BadRequest(f"field {name!r} must be {names}", "bad_field")
    return value


def _json_type(kind: type) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", dict: "an object",
            list: "an array"}.get(kind, kind.__name__)


@overload
def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int: ...


@overload
def query_int(request: web.Request, name: str, default: None, low: int,
              high: int) -> int | None: ...


def query_int(request: web.Request, name: str, default: int | None, low: int,
              high: int) -> int | None:
    """An integer query parameter; present but empty is as wrong as ``abc``."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer", "bad_field") from None
    if not low <= value <= high:
        raise BadRequest(f"query parameter {name!r} must be between {low} and {high}",
                         "bad_field")
    return value


def run_id(request: web.Request) -> int:
    try:
        value = int(request.match_info["run_id"])
    except ValueError:
        raise BadRequest("a run id is a positive integer", "bad_field") from None
    if value < 1 or value > 2**62:
        raise BadRequest("a run id is a positive integer", "bad_field")
    return value


def confined_path(raw: str, roots: list[Path]) -> str:
    """``raw`` resolved (symlinks too) and checked to lie inside one of ``roots``."""
    if "\0" in raw or not raw.strip():
        raise BadRequest("field 'sourceIdentifier' is not a usable path", "bad_field")
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        raise BadRequest("field 'sourceIdentifier' must be an absolute path", "bad_field")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise BadRequest(f"sourceIdentifier {raw!r} does not exist", "not_found_path") from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise BadRequest(f"sourceIdentifier {raw!r} is outside the allowed folders "
                         f"({allowed}); add it to [api].allowed_paths", "forbidden_path")
    if not resolved.is_file():
        raise BadRequest(f"sourceIdentifier {raw!r} is not a regular file", "bad_field")
    return str(resolved)
