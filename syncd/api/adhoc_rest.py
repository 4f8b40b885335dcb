"""Ad-hoc REST jobs (SPEC §5, seed 003's Example 2): the request's options as a remote
source's (``method``, ``auth``, ``dataPath``, ``pagination``), into a table as CSV runs do.

An inline secret (``auth.token``, ``password``, ``value``, ``client_secret``,
``refresh_token``) is sealed before the job spec is stored with the run (see
``syncd.config.sealed``): the run can resume after a restart, and nothing stores or
shows the secret in clear. Answers show it as ``***``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

from syncd.api.adhoc import (
    TARGET_SOURCE,
    AdhocJob,
    AdhocOptions,
    check_table_columns,
    check_target_fields,
    choose_key,
    parse_options,
    plan_from_spec,
)
from syncd.api.adhoc_table import existing_table
from syncd.api.context import ApiContext
from syncd.api.envelope import BadRequest
from syncd.config.sealed import Sealer, masked
from syncd.engine import Request

SECRET_KEYS = ("token", "password", "value", "client_secret", "refresh_token")
AUTH_TYPES = ("none", "bearer", "basic", "api_key", "oauth2")
CSV_ONLY = ("hasHeader", "delimiter")
PAGINATION = {"type": "type", "pageParam": "page_param", "limitParam": "limit_param",
              "limit": "limit", "start": "start", "maxPages": "max_pages",
              "offsetParam": "offset_param", "cursorParam": "cursor_param",
              "cursorPath": "cursor_path", "nextPath": "next_path"}


def check_url(identifier: str) -> str:
    """A remote source's ``sourceIdentifier``: an http(s) URL with a host."""
    parts = urlsplit(identifier.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("field 'sourceIdentifier' must be an http:// or https:// URL for a "
                         "remote source", "bad_field")
    return identifier.strip()


def pagination(raw: dict[str, Any] | None) -> dict[str, Any]:
    """``options.pagination`` (camelCase, with ``enabled``) as the source's ``pagination``."""
    if not raw:
        return {"type": "none"}
    out: dict[str, Any] = {}
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadRequest("field 'options.pagination.enabled' must be a boolean", "bad_field")
    for name, value in raw.items():
        if name == "enabled":
            continue
        if name not in PAGINATION:
            raise BadRequest(f"field 'options.pagination.{name}': unknown option; known: "
                             f"enabled, {', '.join(PAGINATION)}", "bad_field")
        out[PAGINATION[name]] = value
    if not enabled:
        return {"type": "none"}
    out.setdefault("type", "page")
    return out


def auth(raw: dict[str, Any] | None, sealer: Sealer) -> dict[str, Any] | None:
    """``options.auth`` with its secrets sealed; a 400 for a type no remote knows."""
    if raw is None:
        return None
    kind = raw.get("type")
    if kind not in AUTH_TYPES:
        raise BadRequest(f"field 'options.auth.type' must be one of {', '.join(AUTH_TYPES)}",
                         "bad_field")
    for name, value in raw.items():
        if name in SECRET_KEYS and not isinstance(value, str):
            raise BadRequest(f"field 'options.auth.{name}' must be a string", "bad_field")
    return sealer.seal_keys(raw, SECRET_KEYS)


def job_spec(source_type: str, identifier: str, options: AdhocOptions, table: Any,
             sealer: Sealer) -> AdhocJob:
    """The stored spec of an ad-hoc REST job (secrets sealed), with its key chosen."""
    given = [name for name in CSV_ONLY if name in options.model_fields_set]
    if given or (options.columnMapping is not None and options.fieldMapping is not None):
        raise BadRequest(f"options {', '.join(given) or 'columnMapping'} are for CSV "
                         "sources; a REST source takes fieldMapping", "bad_field")
    pairs = options.fieldMapping or options.columnMapping
    if not pairs:
        raise BadRequest("give options.fieldMapping (target field: dotted path in each "
                         "record); an API answer has no header to map by name", "bad_field")
    mapping = dict(pairs)
    check_target_fields(mapping, "fieldMapping")
    constants = {"content_type": options.contentType} if options.contentType else {}
    key, key_from = choose_key(options, mapping, constants, {}, table)
    check_table_columns(table, mapping, constants)
    source: dict[str, Any] = {"type": source_type, "url": identifier,
                              "method": (options.method or "GET").upper(),
                              "data_path": options.dataPath or "",
                              "pagination": pagination(options.pagination)}
    sealed = auth(options.auth, sealer)
    if sealed is not None:
        source["auth"] = sealed
    spec = {"source": source, "target": {"type": "sql", "table": options.targetTable,
                                         "key": key},
            "mapping": mapping, "constants": constants}
    return AdhocJob(spec, key, key_from, TARGET_SOURCE, defaulted=options.key is None)


async def rest_request(c: ApiContext, source_type: str, identifier: str | None,
                       body: dict[str, Any], dry_run: bool, allow_mass_missing: bool
                       ) -> tuple[Request, dict[str, Any]]:
    """The run request of an ad-hoc REST trigger, and what its 202 says about the job."""
    if identifier is None:
        raise BadRequest("field 'sourceIdentifier' (the API's URL) is required for an "
                         "ad-hoc job", "missing_field")
    setup = c.setup()
    options = parse_options(body.get("options", {}))
    table = await asyncio.to_thread(existing_table, c.store.db, options.targetTable)
    sealer = Sealer(setup.state_dir)
    job = await asyncio.to_thread(job_spec, source_type, identifier, options, table, sealer)
    plan = await asyncio.to_thread(plan_from_spec, job.spec, setup.registry, sealer)
    source = job.spec["source"]
    shown = {"url": source["url"], "method": source["method"],
             "dataPath": source["data_path"],
             "pagination": {_camel(k): v for k, v in source["pagination"].items()}}
    if "auth" in source:
        shown["auth"] = masked(source["auth"], SECRET_KEYS)
    return (Request(plan.name, "api", identifier, dry_run, plan=plan, spec=job.spec,
                    allow_mass_missing=allow_mass_missing),
            {**job.answer, "source": shown})


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m[1].upper(), name)
