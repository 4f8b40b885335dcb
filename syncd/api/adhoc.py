"""Ad-hoc jobs: a run described in the trigger request instead of the config.

The request's ``options`` become a job config; the spec is stored with the run, so
an interrupted ad-hoc run resumes like any other.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from syncd.adapters import Source
from syncd.api.envelope import BadRequest
from syncd.config.schema import JobConfig
from syncd.engine.plan import JobPlan, resolve_job
from syncd.errors import ConfigError
from syncd.plugins import Registry
from syncd_builtin.sql_target import BOOKKEEPING

IDENTIFIER = re.compile(r"[^a-z0-9_]+")
RESERVED = ("id", *BOOKKEEPING)  # ad-hoc jobs always write through the SQL target


class AdhocOptions(BaseModel):
    """``options`` of an ad-hoc trigger (SPEC §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    targetTable: str = Field("content_index", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    contentType: str | None = None
    hasHeader: bool = True
    delimiter: str = "auto"
    columnMapping: dict[str, str] | None = None  # source column -> target field
    fieldMapping: dict[str, str] | None = None  # same, for JSON sources (dotted paths)
    key: list[str] | None = Field(None, min_length=1)
    dataPath: str | None = None
    method: str | None = None
    auth: dict[str, Any] | None = None
    pagination: dict[str, Any] | None = None


def column_name(header: str) -> str:
    """A header as a column name: lower case, letters, digits and ``_``.

    A column called ``id`` becomes ``external_id`` (the table has an ``id`` of its own),
    and names the SQL target keeps for itself get a ``src_`` prefix.
    """
    name = IDENTIFIER.sub("_", header.strip().lower()).strip("_") or "column"
    if name == "id":
        return "external_id"
    if name[0].isdigit() or name in RESERVED:
        return f"src_{name}"
    return name


def parse_options(raw: Any) -> AdhocOptions:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest("field 'options' must be an object", "bad_field")
    try:
        return AdhocOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("options", *first["loc"]))
        message = "unknown option" if first["type"] == "extra_forbidden" else first["msg"]
        raise BadRequest(f"field {where!r}: {message}", "bad_field") from None


def source_options(source: type[Source], options: AdhocOptions) -> BaseModel:
    """The source's own options from the ad-hoc ones; a 400 names the option at fault."""
    names = {"has_header": "hasHeader", "delimiter": "delimiter"}
    try:
        return source.Options.model_validate(
            {"has_header": options.hasHeader, "delimiter": options.delimiter})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = names.get(str(first["loc"][0]), str(first["loc"][0])) if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise BadRequest(f"field 'options.{where}': {message}", "bad_field") from None


def job_spec(source_type: str, options: AdhocOptions, header: list[str] | None
             ) -> tuple[dict[str, Any], list[str], bool]:
    """The stored spec of an ad-hoc job, its key, and whether the key was defaulted."""
    if options.dataPath or options.method or options.auth or options.pagination:
        raise BadRequest("options dataPath, method, auth and pagination are for REST "
                         "sources", "bad_field")
    pairs = options.columnMapping or options.fieldMapping
    if not pairs:
        if not header:
            raise BadRequest("give options.columnMapping (source column → target field); "
                             "the file has no header to map by name", "bad_field")
        pairs = {name: column_name(name) for name in header}
    mapping: dict[str, str] = {}
    for source_field, target_field in pairs.items():
        if not isinstance(target_field, str) or not re.fullmatch(
                r"[A-Za-z_][A-Za-z0-9_]{0,62}", target_field) or target_field in RESERVED:
            raise BadRequest(f"options.columnMapping[{source_field!r}]: a target field is "
                             f"letters, digits and '_', and not one of {', '.join(RESERVED)}",
                             "bad_field")
        mapping[target_field] = source_field
    defaulted = options.key is None
    key = options.key or (["external_id"] if "external_id" in mapping else
                          ["id"] if "id" in mapping else [next(iter(mapping))])
    constants = {"content_type": options.contentType} if options.contentType else {}
    spec = {
        "source": {"type": source_type, "has_header": options.hasHeader,
                   "delimiter": options.delimiter},
        "target": {"type": "sql", "table": options.targetTable, "key": key},
        "mapping": mapping, "constants": constants,
    }
    return spec, key, defaulted


def plan_from_spec(spec: dict[str, Any], registry: Registry) -> JobPlan:
    """Rebuild the plan of an ad-hoc run; bad specs are 400s naming the option."""
    name = f"adhoc-{spec['target']['table']}"
    try:
        job = JobConfig.model_validate(spec)
        return resolve_job(name, job, registry, "request")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
                         "bad_field") from None
    except ConfigError as exc:
        raise BadRequest(str(exc).removeprefix("request: "), "bad_field") from None
