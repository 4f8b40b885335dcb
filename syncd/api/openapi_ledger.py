"""The OpenAPI description of the ledger endpoints (``syncd.api.ledger_routes``)."""

from __future__ import annotations

from typing import Any

from syncd.api.openapi import NULLABLE_INT, NULLABLE_STR, _answer, _errors, _ref
from syncd.store.models import CONFLICT_STATUSES, ID_MAP_STATES, KEEP

NULLABLE_BOOL = {"type": "boolean", "nullable": True}
JOB_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
LIMIT = {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
BEFORE = {"name": "before", "in": "query",
          "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}
RECORD = {"type": "object", "nullable": True, "additionalProperties": True}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "required": list(properties), "properties": properties}
    if description:
        schema["description"] = description
    return schema


def ledger_schemas() -> dict[str, Any]:
    conflict = {
        "id": {"type": "integer"}, "job": {"type": "string"},
        "localKey": {"type": "string"}, "remoteId": NULLABLE_STR,
        "localRecord": RECORD, "remoteRecord": RECORD,
        "status": {"type": "string", "enum": list(CONFLICT_STATUSES)},
        "resolution": {"type": "string", "nullable": True, "enum": [*KEEP, None]},
        "createdAt": NULLABLE_STR, "updatedAt": NULLABLE_STR, "resolvedAt": NULLABLE_STR}
    answer = {"side": {"type": "string", "enum": ["source", "target"]},
              "adapter": {"type": "string"}, "ok": {"type": "boolean"},
              "message": {"type": "string"}, "seconds": {"type": "number"},
              "errorType": NULLABLE_STR}
    return {
        "IdMapEntry": _object({
            "id": {"type": "integer"}, "localKey": {"type": "string"},
            "remoteId": NULLABLE_STR,
            "state": {"type": "string", "enum": list(ID_MAP_STATES)},
            "attempts": {"type": "integer"}, "lastError": NULLABLE_STR,
            "errorRetryable": NULLABLE_BOOL,
            "transient": {**NULLABLE_BOOL, "description": "true: later runs send it by "
                          "themselves; false: needs a person (a permanent error or an open "
                          "conflict); null: nothing to do"},
            "needsPerson": {"type": "boolean"}, "conflictId": NULLABLE_INT,
            "contentHash": NULLABLE_STR, "remoteHash": NULLABLE_STR,
            "syncedAt": NULLABLE_STR, "updatedAt": NULLABLE_STR},
            "One record of an export job's id map, with what becomes of it."),
        "Conflict": _object(conflict, "A record changed on both sides since the last sync."),
        "Resolved": {"allOf": [_ref("Conflict"), _object({
            "idmapState": {"type": "string", "enum": ["pending", "synced"]},
            "nextRun": {"type": "string"}})]},
        "CheckAnswer": _object(answer),
    }


def ledger_paths() -> dict[str, Any]:
    counts = _object({s: {"type": "integer"} for s in ID_MAP_STATES})
    empty_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {}}}}}
    conflict_id = {"name": "conflict_id", "in": "path", "required": True,
                   "schema": {"type": "integer", "minimum": 1, "maximum": 2**62}}
    return {
        "/v1/jobs/{name}/idmap": {"get": {
            "summary": "An export job's id map, newest row first; page with before=nextBefore",
            "operationId": "getIdMap",
            "parameters": [JOB_NAME, {"name": "state", "in": "query", "schema": {
                "type": "string", "enum": list(ID_MAP_STATES)}}, LIMIT, BEFORE],
            "responses": {**_answer("a page of the id map", _object({
                "job": {"type": "string"}, "counts": counts,
                "entries": {"type": "array", "items": _ref("IdMapEntry")},
                "nextBefore": NULLABLE_INT})), **_errors(400, 401, 404, 503)}}},
        "/v1/jobs/{name}/check": {"post": {
            "summary": "Can the job's source and target be reached and authenticated? "
                       "Touches no data",
            "operationId": "checkJob", "parameters": [JOB_NAME], "requestBody": empty_body,
            "responses": {**_answer("both sides were asked; ok is true when both answered",
                                    _object({"job": {"type": "string"},
                                             "ok": {"type": "boolean"},
                                             "source": _ref("CheckAnswer"),
                                             "target": _ref("CheckAnswer")})),
                          **_errors(400, 401, 404, 413, 503)}}},
        "/v1/conflicts": {"get": {
            "summary": "Records changed on both sides (the review queue), newest first",
            "operationId": "listConflicts",
            "parameters": [{"name": "status", "in": "query", "schema": {
                "type": "string", "enum": list(CONFLICT_STATUSES)}},
                {"name": "job", "in": "query", "schema": {"type": "string"}}, LIMIT, BEFORE],
            "responses": {**_answer("a page of conflicts", _object({
                "conflicts": {"type": "array", "items": _ref("Conflict")},
                "nextBefore": NULLABLE_INT})), **_errors(400, 401, 503)}}},
        "/v1/conflicts/{conflict_id}/resolve": {"post": {
            "summary": "Keep one side: local (the next run overwrites the remote) or remote "
                       "(the next run sends nothing for the record)",
            "operationId": "resolveConflict", "parameters": [conflict_id],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["keep"],
                "properties": {"keep": {"type": "string", "enum": list(KEEP)}}}}}},
            "responses": {**_answer("resolved", _ref("Resolved")),
                          **_errors(400, 401, 404, 409, 413, 503)}}},
    }
