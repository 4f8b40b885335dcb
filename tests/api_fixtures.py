"""A real control API for tests: a SQLite store, an engine, the built-in adapters.

The adapters come through the ``syncd`` entry points exactly as in the daemon; a
``held_csv`` source (a csv source that waits for the test to release it) is added
for runs a test must catch while they execute.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse

from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint
from syncd.api import ApiContext
from syncd.api.adhoc import plan_from_spec
from syncd.api.envelope import ApiError
from syncd.bootstrap import Setup
from syncd.config import validate
from syncd.config.sealed import Sealer
from syncd.engine import Engine, JobPlan, resolve_jobs
from syncd.errors import JobError
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd_builtin.csv_source import CsvSource

HEADER = ("id", "title", "artist")

# music.csv: 10 good records, one with too few fields (line 5), one without a key (line 9)
MUSIC_LINES = [
    "id,title,artist",
    "1,Song 1,Artist 1", "2,Song 2,Artist 2", "3,Song 3,Artist 3",
    "bad,row",
    "4,Song 4,Artist 4", "5,Song 5,Artist 5", "6,Song 6,Artist 6",
    ",No key,Nobody",
    "7,Song 7,Artist 7", "8,Song 8,Artist 8", "9,Song 9,Artist 9", "10,Song 10,Artist 10",
]
MUSIC_RECORDS = 12  # every record but the header, good or bad
MUSIC_GOOD = 10


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_rows(path: Path, rows: int) -> Path:
    """A clean ``id,title,artist`` CSV of ``rows`` records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(HEADER) + "\n")
        f.writelines(f"{i},Song {i},Artist {i % 97}\n" for i in range(1, rows + 1))
    return path


def csv_job(path: Path | str, table: str, *, source_type: str = "csv", batch_rows: int = 4,
            mapping: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A job reading ``path`` into ``table``, keyed by the CSV's ``id``."""
    return {"source": {"type": source_type, "path": str(path)},
            "target": {"type": "sql", "table": table, "key": ["external_id"]},
            "mapping": dict(mapping or {"external_id": "id", "title": "title",
                                        "artist": "artist"}),
            "batch_rows": batch_rows, **extra}


class HoldPlugin:
    """Registers ``held_csv``: reads like ``csv`` once ``release()`` is called."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()  # set when a run reached its first read
        plugin = self

        class HeldCsvSource(CsvSource):
            name = "held_csv"
            description = "A csv source that waits for the test before reading."

            def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                     batch_rows: int) -> Iterator[Batch]:
                plugin.entered.set()
                if not plugin.gate.wait(30):
                    raise TimeoutError("the test never released the held source")
                yield from super().read(fields, checkpoint, batch_rows)

        self.source = HeldCsvSource

    def release(self) -> None:
        self.gate.set()

    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        registry.add_source(self.source)


@dataclass
class Harness:
    """What ``syncd run`` wires together, minus the listening socket."""

    setup: Setup
    store: Store
    engine: Engine
    context: ApiContext
    hold: HoldPlugin

    @property
    def state_dir(self) -> Path:
        return self.setup.state_dir

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return list(self.store.db.execute_sql(sql, params).fetchall())

    async def close(self) -> None:
        self.hold.release()
        await self.engine.shutdown()


def build(state_dir: Path, jobs: Mapping[str, Any], *, token: str | None = None,
          allowed_paths: Sequence[Path] = (), max_concurrent_runs: int = 4,
          database: str = "", plugins: Sequence[Any] = (),
          remotes: Mapping[str, Any] | None = None) -> Harness:
    """Config, plugins, store, engine and API context, as the daemon makes them.

    Call it with the event loop that will run the app (the engine's primitives bind to it).
    """
    config = validate({
        "daemon": {"state_dir": str(state_dir), "max_concurrent_runs": max_concurrent_runs,
                   "database": database},
        "usb": {"enabled": False},
        "api": {"allowed_paths": [str(p) for p in allowed_paths]},
        "remotes": dict(remotes or {}),
        "jobs": dict(jobs),
    })
    hold = HoldPlugin()
    pm, registry = get_pluginmanager(load_entrypoints=True, plugins=(hold, *plugins))
    plans = resolve_jobs(config, registry, state_dir.parent / "syncd.toml")
    setup = Setup(state_dir.parent / "syncd.toml", config, pm, registry, plans)
    store = setup.open_store()
    engine = Engine(store, plans, setup.state_dir, max_concurrent_runs, pm=pm,
                    http=setup.http() if remotes else None)
    engine.adhoc_planner = adhoc_planner(setup)
    context = ApiContext(setup=lambda: setup, store=store, engine=engine, token=token)
    return Harness(setup, store, engine, context, hold)


def adhoc_planner(setup: Setup) -> Callable[[Mapping[str, Any]], JobPlan]:
    """Rebuilds an ad-hoc run's plan from its stored spec, as ``Daemon._adhoc_plan`` does."""

    def plan(spec: Mapping[str, Any]) -> JobPlan:
        try:
            return plan_from_spec(dict(spec), setup.registry, Sealer(setup.state_dir))
        except ApiError as exc:
            raise JobError(f"cannot rebuild the ad-hoc job: {exc.message}") from None

    return plan


# -- answers --------------------------------------------------------------------------


def check_envelope(body: Any, success: bool) -> None:
    """The SPEC §5 envelope: success, data or error{code, message}, an ISO-8601 timestamp."""
    assert isinstance(body, dict), body
    assert body["success"] is success, body
    stamp = body["timestamp"]
    assert isinstance(stamp, str) and stamp.endswith("Z"), body
    assert datetime.fromisoformat(stamp.removesuffix("Z") + "+00:00").tzinfo is not None
    if success:
        assert set(body) == {"success", "data", "timestamp"}, body
    else:
        assert set(body) == {"success", "error", "timestamp"}, body
        error = body["error"]
        assert set(error) == {"code", "message"}, body
        assert isinstance(error["code"], str) and error["code"], body
        assert isinstance(error["message"], str) and error["message"], body


async def answer(response: ClientResponse, status: int) -> Any:
    """The checked envelope of ``response``: ``data`` on success, ``error`` otherwise."""
    text = await response.text()
    assert response.status == status, f"{response.method} {response.url}: {response.status} {text}"
    assert response.content_type == "application/json", response.content_type
    body = json.loads(text)
    check_envelope(body, success=status < 400)
    return body["data"] if status < 400 else body["error"]




class EventStream:
    """The client side of ``/v1/events``: parses server-sent events as they arrive."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def opened(self) -> EventStream:
        """Wait for the stream's opening comment: from then on no event is missed."""
        line = await asyncio.wait_for(self.response.content.readline(), 5)
        assert line.startswith(b":"), line
        return self

    async def next(self, timeout: float) -> tuple[str, dict[str, Any]]:
        kind, data = "message", ""
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), timeout)
            if not raw:
                raise AssertionError(f"the event stream ended; seen {self.seen}")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    event = (kind, json.loads(data))
                    self.seen.append(event)
                    return event
                continue
            name, _, value = line.partition(": ")
            if name == "event":
                kind = value
            elif name == "data":
                data += value

    async def until(self, done: Callable[[str, dict[str, Any]], bool],
                    timeout: float = 20.0) -> list[tuple[str, dict[str, Any]]]:
        """Events up to and including the first for which ``done`` is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        got = []
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; seen {got}")
            kind, data = await self.next(left)
            got.append((kind, data))
            if done(kind, data):
                return got
