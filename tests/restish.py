"""An example third-party target: records to a small REST API, written to the contract.

It is what README's "Writing an adapter" shows: an ``AsyncRecordTarget`` that maps
one ``Change`` to one request. Everything else — hashing, unchanged detection, the
id map, idempotency keys, retries, rate limits, dry runs — is the engine's and the
HTTP client's. ``tests/testing/test_adapter_contract.py`` runs it through the contract suite
against ``syncd.testing.MemoryRemote``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from syncd import hookimpl
from syncd.adapters import (
    AsyncRecordTarget,
    Change,
    Options,
    Result,
    RunContext,
    TargetCapabilities,
    TargetSchema,
)
from syncd.errors import RemoteRejected


class RestishTarget(AsyncRecordTarget):
    """``POST /items``, ``PUT`` and ``DELETE /items/{id}``; ``GET /items?key=`` finds."""

    name = "restish"
    description = "a small REST API (example adapter)"
    capabilities = TargetCapabilities(update=True, delete=True, lookup=True, concurrency=4)

    class Options(Options):
        url: str = Field(description="base URL of the API")
        key: list[str] = Field(["id"], description="fields identifying a record")
        rate_limit: str | None = Field(None, description="e.g. 20/s")

    async def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        self.client = ctx.client("restish:" + self.options.url, base_url=self.options.url,
                                 rate_limit=self.options.rate_limit, max_delay=1.0)

    async def apply(self, change: Change) -> Result:
        body = {**change.record, "key": change.key}
        if change.kind == "create":
            answer = await self.client.request("POST", "/items", json_body=body,
                                               idempotency_key=change.idempotency_key)
            return Result("created", _id(answer.json()))
        path = f"/items/{change.remote_id}"
        if change.kind == "update":
            await self.client.request("PUT", path, json_body=body)
            return Result("updated", change.remote_id)
        if change.kind == "delete":
            await self.client.request("DELETE", path)
            return Result("deleted", change.remote_id)
        await self.client.request("PUT", path, json_body={**body, "available": False})
        return Result("unavailable", change.remote_id)

    async def find(self, change: Change) -> str | None:
        answer = await self.client.request("GET", "/items", params={"key": change.key})
        found = answer.json()
        return _id(found[0]) if found else None

    async def close(self) -> None:
        await self.client.close()

    async def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """``syncd check``: a lookup of no key reaches the API and changes nothing."""
        await self.open(schema, ctx)
        try:
            await self.client.request("GET", "/items", params={"key": ""})
        finally:
            await self.close()
        return f"GET {self.options.url}/items answered"


def _id(item: Any) -> str:
    if not isinstance(item, dict) or "id" not in item:
        raise RemoteRejected(f"the answer has no id: {str(item)[:100]!r}", code="no_id")
    return str(item["id"])


@hookimpl
def syncd_register_adapters(registry: Any) -> None:
    registry.add_target(RestishTarget)
