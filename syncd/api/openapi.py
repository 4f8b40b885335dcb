"""The OpenAPI 3.0 description of the control API, served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from syncd import __version__
from syncd.terms import RUN_STATUSES

STATUSES = list(RUN_STATUSES)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["success", "data", "timestamp"],
            "properties": {"success": {"type": "boolean", "enum": [True]}, "data": data,
                           "timestamp": {"type": "string"}}}


def _answer(description: str, data: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": _envelope(data)}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {400: "bad input; the message names the field", 401: "missing or wrong token",
             404: "no such run, job, conflict or endpoint",
             409: "conflicts with the run's (or conflict's) state",
             413: "body over 64 KiB", 503: "shutting down, or the database does not answer"}
    return {str(s): {"description": texts[s], "content": {"application/json": {
        "schema": _ref("Error")}}} for s in statuses}


NULLABLE_STR = {"type": "string", "nullable": True}
SOURCE_PATH = {"type": "string", "description": "absolute path inside the allowed folders"}
RUN_FLAGS = {
    "dryRun": {"type": "boolean", "description": "read and check, write nothing"},
    "allowMassMissing": {"type": "boolean", "description":
                         "confirm a full sync that removes (on_missing) more than the job's "
                         "max_missing of its records; without it such a run fails untouched"}}
#: a table name, not the database's own (sqlite_*, pg_*, information_schema)
TABLE_NAME = (r"^(?![sS][qQ][lL][iI][tT][eE]_|[pP][gG]_|[iI][nN][fF][oO][rR][mM][aA][tT]"
              r"[iI][oO][nN]_[sS][cC][hH][eE][mM][aA]$)[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: what the 202 of an ad-hoc trigger says about the job it made
ADHOC_ANSWER = {
    "table": {"type": "string"},
    "key": {"type": "array", "items": {"type": "string"}},
    "keyDefaulted": {"type": "boolean", "description": "true unless options.key was given"},
    "keyFrom": {"type": "string", "enum": ["options.key", "table", "column", "whole record"],
                "description": "options.key; the existing table's key; the id/external_id "
                               "column; or a digest of every mapped value"},
    "mapping": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "target field: source column, as used"},
    "mappingDirection": {"type": "string",
                         "enum": ["target: source", "source: target", "by header"]},
    "message": {"type": "string"}}


def adhoc_options() -> dict[str, Any]:
    """``options`` of an ad-hoc trigger, as ``syncd.api.adhoc.AdhocOptions`` checks them."""
    mapping = {"type": "object", "additionalProperties": {"type": "string"},
               "description": "target field: source column (seed 003, like a config's "
                              "[jobs.X.mapping]); source column: target field is taken only "
                              "when the header shows it. Without it, every column by name."}
    return {"type": "object", "additionalProperties": False, "properties": {
        "targetTable": {"type": "string", "pattern": TABLE_NAME, "default": "content_index",
                        "description": "a new table, or one syncd made: an existing table is "
                                       "written by its own key into its own columns only"},
        "contentType": {"type": "string", "description": "stored as content_type"},
        "hasHeader": {"type": "boolean", "default": True}, "delimiter": {"type": "string"},
        "columnMapping": mapping, "fieldMapping": mapping,
        "key": {"type": "array", "minItems": 1, "items": {"type": "string"},
                "description": "target fields identifying a record. Default: the existing "
                               "table's key, else external_id (a column id or external_id), "
                               "else the whole record (a digest of every mapped value)"},
        "dataPath": {"type": "string"}, "method": {"type": "string"},
        "auth": {"type": "object"}, "pagination": {"type": "object"}}}
NULLABLE_INT = {"type": "integer", "nullable": True}


def _links(answer: dict[str, Any], pointer: str, *operations: str) -> dict[str, Any]:
    """``answer`` with links from the run id at ``pointer`` to the run operations."""
    for response in answer.values():
        response["links"] = {op[0].upper() + op[1:]: {
            "operationId": op, "parameters": {"run_id": f"$response.body#{pointer}"}}
            for op in operations}
    return answer


def spec(auth: bool = False) -> dict[str, Any]:
    """The document of this server: bearer auth is described only when a token is set."""
    run_properties = {
        "syncRunId": {"type": "integer"}, "job": {"type": "string"},
        "trigger": {"type": "string"}, "status": {"type": "string", "enum": STATUSES},
        "sourceType": {"type": "string"}, "sourceIdentifier": {"type": "string"},
        **{f"items{k}": {"type": "integer"} for k in (
            "Processed", "Inserted", "Updated", "Unchanged", "Skipped", "Failed", "Missing")},
        "createdAt": NULLABLE_STR, "startedAt": NULLABLE_STR, "completedAt": NULLABLE_STR,
        "checkpoint": {"type": "object", "nullable": True, "additionalProperties": True},
        "errorMessage": NULLABLE_STR, "attempt": {"type": "integer"},
        "parentRun": NULLABLE_INT, "dryRun": {"type": "boolean"}, "host": {"type": "string"},
        "device": {"type": "object", "nullable": True, "additionalProperties": True,
                   "description": "label, uuid and serial of the USB drive read"},
    }
    counts = {k: {"type": "integer"} for k in ("total", *STATUSES)}
    run_id = {"name": "run_id", "in": "path", "required": True,
              "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}
    post_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {}}}}}
    schemas = {
        "Error": {"type": "object", "required": ["success", "error", "timestamp"],
                  "properties": {"success": {"type": "boolean", "enum": [False]},
                                 "timestamp": {"type": "string"},
                                 "error": {"type": "object", "required": ["code", "message"],
                                           "properties": {"code": {"type": "string"},
                                                          "message": {"type": "string"}}}}},
        "Run": {"type": "object", "required": list(run_properties),
                "properties": run_properties},
        "RunError": {"type": "object", "required": ["type", "code", "message", "item",
                                                    "retryable"],
                     "properties": {"type": {"type": "string", "enum": [
                         "validation", "parsing", "network", "auth", "rate_limit",
                         "conflict", "target", "system"]},
                         "code": {"type": "string"}, "message": {"type": "string"},
                         "item": {"type": "string"}, "retryable": {"type": "boolean"}}},
        "RunDetail": {"allOf": [_ref("Run"), {
            "type": "object", "required": ["errors", "errorsTotal"],
            "properties": {"errors": {"type": "array", "items": _ref("RunError")},
                           "errorsTotal": {"type": "integer"},
                           "artifacts": {"type": "array", "items": {"type": "string"},
                                         "description": "files adapters saved for the run "
                                         "under state_dir/artifacts/RUN (screenshots, "
                                         "pages and traces of failed browser steps)"}}}]},
        "Counts": {"type": "object", "required": list(counts), "properties": counts},
        "Job": {"type": "object", "required": ["name", "source", "target", "triggers",
                                               "nextRunAt", "dependsOn", "lastRun"],
                "properties": {
                    "name": {"type": "string"},
                    "source": {"type": "object", "properties": {
                        "type": {"type": "string"}, "path": NULLABLE_STR}},
                    "target": {"type": "object", "properties": {
                        "type": {"type": "string"}, "table": NULLABLE_STR,
                        "key": {"type": "array", "items": {"type": "string"}}}},
                    "triggers": {"type": "array", "items": {"type": "string"}},
                    "schedule": NULLABLE_STR, "every": {"type": "number", "nullable": True},
                    "nextRunAt": NULLABLE_STR, "onMissing": {"type": "string"},
                    "dependsOn": {"type": "array", "items": {"type": "string"}},
                    "lastRun": {"allOf": [_ref("Run")], "nullable": True}}},
        "Adapter": {"type": "object", "properties": {
            k: {"type": "string"} for k in ("name", "description", "plugin", "distribution",
                                             "module")}},
        "JobTrigger": {
            "type": "object", "additionalProperties": False, "required": ["job"],
            "description": "A run of a configured job.",
            "properties": {"job": {"type": "string"}, "sourceIdentifier": SOURCE_PATH,
                           **RUN_FLAGS}},
        "AdhocTrigger": {
            "type": "object", "additionalProperties": False,
            "required": ["sourceType", "sourceIdentifier"],
            "description": "An ad-hoc job: a source read into a table by its options.",
            "properties": {"sourceType": {"type": "string",
                                          "description": "a registered source (GET /v1/plugins)"},
                           "sourceIdentifier": SOURCE_PATH, **RUN_FLAGS,
                           "options": adhoc_options()}},
        "TriggerRequest": {"oneOf": [_ref("JobTrigger"), _ref("AdhocTrigger")],
                           "description": "Either `job` (a configured job), or `sourceType` "
                                          "with `sourceIdentifier` (an ad-hoc job)."},
    }
    paths: dict[str, Any] = {
        "/v1/health": {"get": {
            "summary": "Liveness and readiness", "operationId": "health",
            "responses": {**_answer("the daemon and its database answer", {
                "type": "object", "required": ["status", "version", "uptimeSeconds",
                                               "database"],
                "properties": {"status": {"type": "string"}, "version": {"type": "string"},
                               "uptimeSeconds": {"type": "number"},
                               "database": {"type": "boolean"},
                               "shuttingDown": {"type": "boolean"}}}), **_errors(503)}}},
        "/v1/sync/stats": {"get": {
            "summary": "Runs by status (per job with by=job)",
            "parameters": [{"name": "by", "in": "query", "schema": {"type": "string",
                                                                   "enum": ["job"]}}],
            "responses": {**_answer("counts", {"allOf": [_ref("Counts"), {
                "type": "object", "properties": {"byJob": {
                    "type": "object", "additionalProperties": _ref("Counts")}}}]}),
                **_errors(400, 401, 503)}}},
        "/v1/sync/runs": {"get": {
            "summary": "Run history, newest first; page with before=nextBefore",
            "operationId": "listRuns",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string",
                                                             "enum": STATUSES}},
                {"name": "job", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": 500, "default": 50}},
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                             "maximum": 2**62}}],
            "responses": {**_links(_answer("a page of runs", {
                "type": "object", "required": ["runs", "nextBefore"],
                "properties": {"runs": {"type": "array", "items": _ref("Run")},
                               "nextBefore": NULLABLE_INT}}), "/data/runs/0/syncRunId",
                "getRun", "retryRun", "cancelRun"), **_errors(400, 401, 503)}}},
        "/v1/sync/{run_id}": {"get": {
            "summary": "One run with its errors (the first 1000)", "parameters": [run_id],
            "operationId": "getRun",
            "responses": {**_answer("the run", _ref("RunDetail")),
                          **_errors(400, 401, 404, 503)}}},
        "/v1/sync/trigger": {"post": {
            "summary": "Start a run of a configured job or an ad-hoc job",
            "operationId": "trigger",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("TriggerRequest")}}},
            "responses": {**_links(_answer("the run was started", {
                "type": "object", "required": ["syncRunId", "job"],
                "properties": {"syncRunId": {"type": "integer"}, "job": {"type": "string"},
                               **ADHOC_ANSWER}}, "202"), "/data/syncRunId", "getRun",
                "cancelRun"), **_errors(400, 401, 404, 409, 413, 503)}}},
        "/v1/sync/resume": {"post": {
            "summary": "Resume every pending or interrupted run", "requestBody": post_body,
            "operationId": "resume",
            "responses": {**_answer("runs resumed", {
                "type": "object", "required": ["resumed"],
                "properties": {"resumed": {"type": "array", "items": {"type": "integer"}}}},
                "202"), **_errors(400, 401, 413, 503)}}},
        "/v1/sync/{run_id}/retry": {"post": {
            "summary": "Retry a failed run from its checkpoint", "parameters": [run_id],
            "requestBody": post_body, "operationId": "retryRun",
            "responses": {**_links(_answer("a new attempt started", {
                "type": "object", "required": ["syncRunId", "parentRun"],
                "properties": {"syncRunId": {"type": "integer"},
                               "parentRun": {"type": "integer"}}}, "202"), "/data/syncRunId",
                "getRun", "cancelRun"),
                **_errors(400, 401, 404, 409, 413, 503)}}},
        "/v1/sync/{run_id}/cancel": {"post": {
            "summary": "Cancel a pending or running run", "parameters": [run_id],
            "requestBody": post_body, "operationId": "cancelRun",
            "responses": {**_answer("cancelled, or cancelling after the current batch", {
                "type": "object", "required": ["syncRunId", "status"],
                "properties": {"syncRunId": {"type": "integer"},
                               "status": {"type": "string",
                                          "enum": ["cancelled", "cancelling"]}}}, "202"),
                **_errors(400, 401, 404, 409, 413, 503)}}},
        "/v1/jobs": {"get": {
            "summary": "Configured jobs with triggers, next run and last run",
            "responses": {**_answer("jobs", {
                "type": "object", "required": ["jobs"],
                "properties": {"jobs": {"type": "array", "items": _ref("Job")}}}),
                **_errors(401, 503)}}},
        "/v1/jobs/{name}": {"get": {
            "summary": "One job",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {**_answer("the job", _ref("Job")), **_errors(401, 404, 503)}}},
        "/v1/plugins": {"get": {
            "summary": "Registered adapters",
            "responses": {**_answer("adapters", {
                "type": "object", "required": ["sources", "targets"],
                "properties": {"sources": {"type": "array", "items": _ref("Adapter")},
                               "targets": {"type": "array", "items": _ref("Adapter")},
                               "failed": {"type": "object",
                                          "additionalProperties": {"type": "string"}}}}),
                **_errors(401, 503)}}},
        "/v1/events": {"get": {
            "summary": "Server-sent events: run_started, progress, error, run_finished",
            "parameters": [{"name": "run", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}],
            "responses": {"200": {"description": "an event stream",
                                  "content": {"text/event-stream": {
                                      "schema": {"type": "string"}}}},
                          **_errors(400, 401, 503)}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics",
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(401, 503)}}},
        "/v1/openapi.json": {"get": {
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.0",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}},
                          **_errors(401, 503)}}},
    }
    from syncd.api.openapi_ledger import ledger_paths, ledger_schemas

    schemas.update(ledger_schemas())
    paths.update(ledger_paths())
    paths["/v1/hooks/{job}"] = _webhook()
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "syncd control API", "version": __version__,
                 "description": "Every JSON answer is an envelope: success, data or error, "
                                "timestamp."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:  # [api] token is set: everything but health needs it
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        paths["/v1/health"]["get"]["security"] = []
    else:  # no token: no bearer 401s (a webhook's bad signature is its own 401)
        for path, item in paths.items():
            for operation in item.values():
                if path != "/v1/hooks/{job}":
                    operation["responses"].pop("401", None)
    return document


def _webhook() -> dict[str, Any]:
    """``POST /v1/hooks/{job}``: signed by the job's secret instead of the bearer token."""
    started = {"type": "object", "required": ["syncRunId", "job", "replayed"],
               "properties": {"syncRunId": {"type": "integer"}, "job": {"type": "string"},
                              "replayed": {"type": "boolean"}}}
    return {"post": {
        "summary": "Start a job's run from another system (SPEC §10)",
        "description": "Needs X-Syncd-Signature: sha256=<hex HMAC-SHA256 of the raw body "
                       "with the job's webhook secret>, not the bearer token. A delivery "
                       "id (X-Syncd-Delivery) seen before is answered 200 with its run.",
        "security": [],
        "parameters": [
            {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "X-Syncd-Signature", "in": "header", "required": True,
             "schema": {"type": "string"}},
            {"name": "X-Syncd-Delivery", "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": 191}}],
        "requestBody": {"required": False, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": True, "properties": {
                "sourceIdentifier": {"type": "string"}}}}}},
        "responses": {**_answer("A delivery seen before: its run", started),
                      **_answer("The run was created", started, "202"),
                      **_errors(400, 401, 404, 409, 413, 503)}}}
