"""Following a run of the daemon until it ends (``syncd trigger --wait``).

The run's server-sent events (``/v1/events?run=ID``) drive the progress bar; its
status is polled as well, in case the last event is lost (a slow client's queue drops
its oldest events). A stream that ends early is opened again, with a growing pause.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import aiohttp

from syncd.cli.api_client import ApiClient, ApiFailure, DaemonUnreachable
from syncd.cli.views import Run
from syncd.terms import FINISHED

POLL_S = 2.0  # how often the run's status is checked besides the events
RETRIES = 5  # hang-ups in a row before giving up
OnEvent = Callable[[str, dict[str, Any]], None]


class EventParser:
    """Server-sent events, fed a line at a time: ``(name, JSON data)`` at each blank line.

    Comment lines (keep-alives) and fields other than ``event`` and ``data`` are skipped;
    data that is not JSON is kept as text.
    """

    def __init__(self) -> None:
        self.name, self.data = "", list[str]()

    def feed(self, raw: bytes) -> tuple[str, Any] | None:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            event = None
            if self.data:
                text = "\n".join(self.data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = text
                event = (self.name or "message", payload)
            self.name, self.data = "", []
            return event
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            self.name = value
        elif key == "data":
            self.data.append(value)
        return None


def parse_events(lines: Iterable[bytes]) -> Iterator[tuple[str, Any]]:
    """The events in ``lines``; an event not ended by a blank line is not one yet."""
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event


async def read_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, Any]]:
    """The events of an open stream until the daemon ends it (or goes away)."""
    parser = EventParser()
    while True:
        try:
            line = await content.readline()
        except (OSError, aiohttp.ClientError):
            return  # the daemon went away
        if not line:
            return
        event = parser.feed(line)
        if event is not None:
            yield event


async def wait_for(client: ApiClient, run_id: int, on_event: OnEvent) -> Run:
    """Follow ``run_id`` until it completed, failed or was cancelled; the run as it ended.

    If the stream ends early the daemon is asked again (a daemon in the middle of
    stopping may hang up on that: asked again too, a few times); one that stopped or
    is stopping (503) is a ``DaemonUnreachable`` saying the run goes on later.
    """
    delay, hung_up = 0.2, 0
    try:
        while True:
            try:
                found = await _follow(client, run_id, on_event)
            except DaemonUnreachable as exc:
                hung_up += 1
                if not exc.closed or hung_up > RETRIES:
                    raise
            else:
                if found is not None:
                    return found
                hung_up = 0
            await asyncio.sleep(delay)  # the stream ended early: the daemon restarts or stops
            delay = min(delay * 2, 5.0)
    except (DaemonUnreachable, ApiFailure) as exc:
        if isinstance(exc, ApiFailure) and exc.status != 503:
            raise
        raise DaemonUnreachable(f"the daemon stopped answering before run {run_id} "
                                f"finished: {exc}",
                                f"the run is saved and goes on when the daemon runs again; "
                                f"see it with: syncd show {run_id}") from None


async def _follow(client: ApiClient, run_id: int, on_event: OnEvent) -> Run | None:
    """One subscription: the finished run, or None when the stream ended before that.

    The subscription is opened before the run is first read, so a run that finishes
    in between is seen either way.
    """
    async with client.events(run_id) as content:
        run = await client.run(run_id)
        if run["status"] in FINISHED:
            return run
        reader = asyncio.create_task(_read(client, run_id, content, on_event))
        poller = asyncio.create_task(_poll(client, run_id))
        try:
            done, _ = await asyncio.wait((reader, poller),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, poller):
                task.cancel()
            await asyncio.gather(reader, poller, return_exceptions=True)
        for task in (reader, poller):  # the events' answer first, if both have one
            if task in done:
                found = task.result()  # or what it raised: a lost daemon, say
                if found is not None:
                    return found
    run = await client.run(run_id)
    return run if run["status"] in FINISHED else None


async def _read(client: ApiClient, run_id: int, content: aiohttp.StreamReader,
                on_event: OnEvent) -> Run | None:
    """Pass the run's events on; the run once it finished, None if the stream ended."""
    async for kind, data in read_events(content):
        if not isinstance(data, dict) or data.get("runId") != run_id:
            continue
        on_event(kind, data)
        if kind == "run_finished":
            run = await client.run(run_id)
            if run["status"] in FINISHED:
                return run
            # stopped for a shutdown: it stays resumable, and the stream ends soon
    return None


async def _poll(client: ApiClient, run_id: int) -> Run:
    """The run once a poll finds it finished; a ``ClientError`` if the daemon is lost."""
    while True:
        await asyncio.sleep(POLL_S)
        run = await client.run(run_id)
        if run.get("status") in FINISHED:
            return run
