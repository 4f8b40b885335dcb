"""Reading a source in the run's worker thread, whichever flavour it is.

An ``AsyncSource`` is read on an event loop of the run's own (``asyncio.Runner``), one
batch at a time, so the daemon's loop never waits for a slow remote; the loop and
the source's resources are closed however the read ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence

from syncd.adapters import AsyncSource, Batch, Checkpoint, Source


def batches(source: Source | AsyncSource, fields: Sequence[str],
            checkpoint: Checkpoint | None, batch_rows: int) -> Iterator[Batch]:
    """The source's batches from ``checkpoint`` on."""
    if not isinstance(source, AsyncSource):
        yield from source.read(fields, checkpoint, batch_rows)
        return
    with asyncio.Runner() as runner:
        stream = source.read(fields, checkpoint, batch_rows)
        try:
            while True:
                try:
                    batch = runner.run(_next(stream))
                except StopAsyncIteration:
                    return
                yield batch
        finally:
            if isinstance(stream, AsyncGenerator):  # what ``async def read`` makes
                runner.run(stream.aclose())
            runner.run(source.aclose())


async def _next(stream: AsyncIterator[Batch]) -> Batch:
    """The next batch, as the coroutine ``Runner.run`` takes (``anext`` is an awaitable)."""
    return await anext(stream)
