"""A source that reads one path of a remote through ``ctx.client``, for engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pydantic import Field

from syncd.adapters import AsyncSource, Batch, Checkpoint, Options, RunContext


class FetchSource(AsyncSource):
    """The ``items`` of ``GET path`` from a remote, as ``(item,)`` rows."""

    name = "fetch"

    class Options(Options):
        remote: str = Field(description="a [remotes.NAME]")
        path: str = Field("/api/data", description="what to GET")

    @property
    def identifier(self) -> str:
        return self.options.remote

    def open(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                   batch_rows: int) -> AsyncIterator[Batch]:
        client = self.ctx.client(self.options.remote)
        try:
            items = (await client.request("GET", self.options.path)).json()["items"]
        finally:
            await client.close()
        yield Batch([(i,) for i in items], [f"item {i}" for i in items], {"done": True})
