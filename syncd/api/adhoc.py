"""Ad-hoc jobs: a run described in the trigger request instead of the config.

The request's ``options`` become a job config; the spec is stored with the run, so
an interrupted ad-hoc run resumes like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from syncd.adapters import AsyncSource, Source
from syncd.api.adhoc_table import STORE_TABLE_KEYS, ExistingTable
from syncd.api.envelope import BadRequest
from syncd.config.schema import JobConfig
from syncd.config.sealed import SealedError, Sealer
from syncd.engine.plan import JobPlan, resolve_job
from syncd.engine.recordkey import RECORD_FIELD
from syncd.errors import ConfigError
from syncd.plugins import Registry
from syncd.store.models import MODELS
from syncd.store.names import BOOKKEEPING

IDENTIFIER = re.compile(r"[^a-z0-9_]+")
RESERVED = ("id", *BOOKKEEPING)  # ad-hoc jobs always write through the SQL target
#: a database's own tables: ``sqlite_master``, ``pg_class``, ``information_schema``
SYSTEM_TABLE = re.compile(r"^(sqlite_|pg_|information_schema$)", re.IGNORECASE)
#: the store's bookkeeping tables (content_index is the default target, not one of them)
STORE_TABLES = frozenset(m._meta.table_name for m in MODELS) - {"content_index"}
RECORD_KEY = "record_key"  # the whole-record key column of a table an ad-hoc run creates
TARGET_SOURCE, SOURCE_TARGET = "target: source", "source: target"


class AdhocOptions(BaseModel):
    """``options`` of an ad-hoc trigger (SPEC §5)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    targetTable: str = Field("content_index", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    contentType: str | None = None
    hasHeader: bool = True
    delimiter: str = "auto"
    columnMapping: dict[str, str] | None = None  # target field -> source column (seed 003)
    fieldMapping: dict[str, str] | None = None  # same, for JSON sources (dotted paths)
    key: list[str] | None = Field(None, min_length=1)
    dataPath: str | None = None
    method: str | None = None
    auth: dict[str, Any] | None = None
    pagination: dict[str, Any] | None = None

    @field_validator("targetTable")
    @classmethod
    def _not_a_system_table(cls, value: str) -> str:
        if SYSTEM_TABLE.match(value):
            raise ValueError(f"{value} is the database's own table; choose another name")
        if value.lower() in STORE_TABLES or value.lower().startswith("syncd_"):
            raise ValueError(f"{value} is one of syncd's own tables; choose another name")
        return value


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
    if not isinstance(raw, dict):
        raise BadRequest("field 'options' must be an object", "bad_field")
    try:
        return AdhocOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("options", *first["loc"]))
        message = ("unknown option" if first["type"] == "extra_forbidden"
                   else first["msg"].removeprefix("Value error, "))
        raise BadRequest(f"field {where!r}: {message}", "bad_field") from None


def check_source_type(source_type: str, registry: Registry) -> None:
    """A 400 for a source type no plugin provides, before anything else is checked."""
    if source_type not in registry.sources:
        raise BadRequest(f"sourceType {source_type!r} is not available; sources: "
                         f"{', '.join(sorted(registry.sources))}", "bad_field")


def source_options(source: type[Source | AsyncSource], options: AdhocOptions) -> BaseModel:
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


@dataclass(slots=True)
class AdhocJob:
    """An ad-hoc job as the 202 describes it: the stored spec and how it was read."""

    spec: dict[str, Any]
    key: list[str]
    key_from: str  # options.key | table | column | whole record
    direction: str  # how columnMapping was read
    defaulted: bool  # no options.key was given

    @property
    def answer(self) -> dict[str, Any]:
        """What the trigger answers about the job, in the request's terms."""
        target = self.spec["target"]
        data: dict[str, Any] = {"key": self.key, "keyDefaulted": self.defaulted,
                                "keyFrom": self.key_from, "table": target["table"],
                                "mapping": {t: s for t, s in self.spec["mapping"].items()
                                            if s != RECORD_FIELD},
                                "mappingDirection": self.direction}
        if self.defaulted and self.key_from == "whole record":
            data["message"] = (f"no key given and no id or external_id column: a record is "
                               f"identified by all its mapped values (a digest kept in "
                               f"{self.key[0]}); set options.key to choose")
        elif self.defaulted:
            data["message"] = (f"no key given: records are upserted by {', '.join(self.key)} "
                               "(set options.key to choose)")
        return data


def orient(pairs: dict[str, str], header: list[str] | None) -> tuple[dict[str, str], str]:
    """``columnMapping`` as target field -> source column, and the direction it was read in.

    The seed and the config write ``target = source``; the other direction is taken only
    when the header proves it (every key a column, not every value).
    """
    if not header:
        return dict(pairs), TARGET_SOURCE
    columns = set(header)
    missing = [v for v in pairs.values() if v not in columns]
    if not missing:
        return dict(pairs), TARGET_SOURCE
    if all(k in columns for k in pairs) and len(set(pairs.values())) == len(pairs):
        return {v: k for k, v in pairs.items()}, SOURCE_TARGET
    raise BadRequest(f"options.columnMapping: {', '.join(map(repr, missing))} "
                     f"{'is' if len(missing) == 1 else 'are'} not in the file's header "
                     f"(a mapping reads target field: source column); columns: "
                     f"{_short(', '.join(header))}", "bad_field")


def job_spec(source_type: str, options: AdhocOptions, header: list[str] | None,
             table: ExistingTable | None) -> AdhocJob:
    """The stored spec of an ad-hoc job, with its key chosen (see ``choose_key``)."""
    if options.dataPath or options.method or options.auth or options.pagination:
        raise BadRequest("options dataPath, method, auth and pagination are for REST "
                         "sources", "bad_field")
    pairs = options.columnMapping or options.fieldMapping
    renamed: dict[str, str] = {}
    if pairs:
        mapping, direction = orient(pairs, header)
    else:
        if not header:
            raise BadRequest("give options.columnMapping (target field: source column); "
                             "the file has no header to map by name", "bad_field")
        mapping, direction = {}, "by header"
        for name in header:
            target = column_name(name)
            if target in mapping:
                raise BadRequest(f"columns {mapping[target]!r} and {name!r} would both be "
                                 f"stored as {target!r}; give options.columnMapping",
                                 "bad_field")
            mapping[target] = name
            if target != name:
                renamed[name] = target
    check_target_fields(mapping)
    constants = {"content_type": options.contentType} if options.contentType else {}
    key, key_from = choose_key(options, mapping, constants, renamed, table)
    check_table_columns(table, mapping, constants)
    spec = {
        "source": {"type": source_type, "has_header": options.hasHeader,
                   "delimiter": options.delimiter},
        "target": {"type": "sql", "table": options.targetTable, "key": key},
        "mapping": mapping, "constants": constants,
    }
    return AdhocJob(spec, key, key_from, direction, defaulted=options.key is None)


def check_target_fields(mapping: dict[str, str], option: str = "columnMapping") -> None:
    """Target fields are plain column names, none of those the SQL target keeps."""
    for target_field, source_field in mapping.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", target_field) \
                or target_field in RESERVED:
            raise BadRequest(f"options.{option}: target field {target_field!r} (for "
                             f"{source_field!r}) must be letters, digits and '_', "
                             f"and not one of {', '.join(RESERVED)}", "bad_field")


def check_table_columns(table: ExistingTable | None, mapping: dict[str, str],
                        constants: dict[str, Any]) -> None:
    """An existing table is written into its own columns only."""
    if table is None:
        return
    unknown = sorted({*mapping, *constants, *BOOKKEEPING} - table.columns)
    if unknown:
        raise BadRequest(f"table {table.name!r} has no column {', '.join(unknown)}; an "
                         "ad-hoc run does not change an existing table: map only its "
                         "columns, or choose a new targetTable", "bad_field")


def choose_key(options: AdhocOptions, mapping: dict[str, str], constants: dict[str, Any],
               renamed: dict[str, str], table: ExistingTable | None) -> tuple[list[str], str]:
    """The key and where it came from; may add the whole-record digest to ``mapping``.

    An existing table is written only by a key it has. Without one given, a new table is
    keyed by ``external_id`` (a column ``id`` or ``external_id``) or else by the whole
    record: one column holding a digest of the mapped values (``syncd.engine.recordkey``).
    """
    fields = {*mapping, *constants}
    if options.key and table is not None and len(options.key) == 1 \
            and options.key[0] not in fields and tuple(options.key) in table.keys:
        mapping[options.key[0]] = RECORD_FIELD  # the table's whole-record key, by name
        return list(options.key), "whole record"
    if options.key:
        for name in options.key:
            if name not in fields:
                note = (f" (the column {name!r} is stored as {renamed[name]!r})"
                        if name in renamed else "")
                raise BadRequest(f"options.key: {name!r} is not a field of the records"
                                 f"{note}; fields: {_short(', '.join(sorted(fields)))}",
                                 "bad_field")
        if table is not None and tuple(options.key) not in table.keys:
            raise BadRequest(f"options.key: table {table.name!r} already exists "
                             f"{_keys(table)}; give that key or choose a new targetTable",
                             "bad_field")
        return list(options.key), "options.key"
    if table is not None:
        if len(table.keys) != 1 and table.name not in STORE_TABLE_KEYS:
            raise BadRequest(f"options.key is required: table {table.name!r} already exists "
                             f"{_keys(table)}", "bad_field")
        key = list(table.keys[0])
        if all(k in fields for k in key):
            return key, "table"
        if len(key) == 1:
            mapping[key[0]] = RECORD_FIELD
            return key, "whole record"
        raise BadRequest(f"table {table.name!r} is keyed by {', '.join(key)}: map every one "
                         "of them", "bad_field")
    if "external_id" in fields:
        return ["external_id"], "column"
    if RECORD_KEY in fields:
        raise BadRequest(f"options.key is required: {RECORD_KEY!r} is a column of the file",
                         "bad_field")
    mapping[RECORD_KEY] = RECORD_FIELD
    return [RECORD_KEY], "whole record"


def _keys(table: ExistingTable) -> str:
    if not table.keys:
        return "and syncd never keyed it (an ad-hoc run writes only to tables syncd made)"
    return "with key " + " or ".join(f"[{', '.join(k)}]" for k in table.keys)


def _short(text: str, limit: int = 200) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_from_spec(spec: dict[str, Any], registry: Registry,
                   sealer: Sealer | None = None) -> JobPlan:
    """Rebuild the plan of an ad-hoc run; bad specs are 400s naming the option.

    Sealed secrets (an inline token) are opened with ``sealer``, the key of state_dir.
    """
    name = f"adhoc-{spec['target']['table']}"
    try:
        if sealer is not None:
            spec = sealer.open(spec)
    except SealedError as exc:
        raise BadRequest(str(exc), "bad_field") from None
    try:
        job = JobConfig.model_validate(spec)
        return resolve_job(name, job, registry, "request")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
                         "bad_field") from None
    except ConfigError as exc:
        raise BadRequest(_in_request_terms(exc.key, str(exc), name), "bad_field") from None


def _in_request_terms(key: str, message: str, name: str) -> str:
    """A config error about the ad-hoc job, naming the request's option, not ``jobs.…``."""
    text = message.split(f"{key}: ", 1)[-1] if key else message
    option = {f"jobs.{name}.target.table": "options.targetTable",
              f"jobs.{name}.target.key": "options.key",
              f"jobs.{name}.mapping": "options.columnMapping",
              f"jobs.{name}.source": "options"}
    for internal, public in option.items():
        if key.startswith(internal):
            key = public
            break
    text = text.replace(f"jobs.{name}.mapping", "the mapping")
    return f"{key}: {text}" if key.startswith("options") else text
