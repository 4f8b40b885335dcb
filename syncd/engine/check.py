"""``syncd check JOB``: can the job's source and target be reached and authenticated?

Seed 003's ``testConnection``. Each side's adapter answers its own ``check`` (see
``syncd.adapters``), in a worker thread (an async adapter on a loop of the check's
own), both sides at once, each within ``timeout`` seconds. Nothing is written: the
context is a dry run's, and an adapter's check touches no data by contract. What an
adapter says back is shown with every secret it revealed blanked out.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from syncd.adapters import AsyncRecordTarget, AsyncSource, TargetSchema
from syncd.engine.ledger import masked
from syncd.engine.plan import JobPlan
from syncd.engine.targets import run_context
from syncd.errors import AdapterError, SourceError, UserError
from syncd.remote.http import HttpFactory
from syncd.store import Store

TIMEOUT_S = 30.0
#: what a failing check is expected to raise; anything else is shown with its type
EXPECTED = (AdapterError, SourceError, UserError, OSError)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one side said: ``ok`` and one line, and how long it took."""

    side: str  # "source" | "target"
    adapter: str
    ok: bool
    message: str
    seconds: float
    error_type: str | None = None  # auth, network, … (AdapterError.error_type) on failure

    def json(self) -> dict[str, Any]:
        data = asdict(self)
        data["errorType"] = data.pop("error_type")
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True, slots=True)
class Report:
    job: str
    source: Answer
    target: Answer

    @property
    def ok(self) -> bool:
        return self.source.ok and self.target.ok

    def json(self) -> dict[str, Any]:
        return {"job": self.job, "ok": self.ok, "source": self.source.json(),
                "target": self.target.json()}


async def check_job(plan: JobPlan, store: Store, state_dir: Path | None,
                    identifier: str | None = None, timeout: float = TIMEOUT_S,
                    http: HttpFactory | None = None) -> Report:
    """Ask both sides of ``plan`` at once; never raises for what an adapter does.

    ``http`` makes the clients of ``[remotes.NAME]`` (without it, remotes are unknown).
    """

    async def one(side: str, adapter: str) -> Answer:
        try:  # a blocking check that hangs is left to end by itself, unanswered
            return await asyncio.wait_for(asyncio.to_thread(
                _side, side, plan, store, state_dir, identifier, timeout, http), timeout + 1)
        except TimeoutError:
            return Answer(side, adapter, False, f"no answer within {timeout:g} s", timeout,
                          "network")

    source, target = await asyncio.gather(one("source", plan.source_cls.name),
                                          one("target", plan.target_cls.name))
    return Report(plan.name, source, target)


def _side(side: str, plan: JobPlan, store: Store, state_dir: Path | None,
          identifier: str | None, timeout: float, http: HttpFactory | None) -> Answer:
    adapter = plan.source_cls.name if side == "source" else plan.target_cls.name
    began = time.monotonic()
    deadline = began + timeout
    log = structlog.get_logger("syncd.check").bind(job=plan.name, side=side)
    ctx = run_context(plan, store, run_id=0, log=log, state_dir=state_dir, dry_run=True,
                      cancelled=lambda: time.monotonic() > deadline, http=http,
                      sql=(plan.target_cls if side == "target"
                           else plan.source_cls).capabilities.store)
    try:
        if side == "source":
            message = _source(plan, ctx, identifier, timeout)
        else:
            message = _target(plan, ctx, timeout)
    except TimeoutError:
        return Answer(side, adapter, False, f"no answer within {timeout:g} s",
                      time.monotonic() - began, "network")
    except EXPECTED as exc:
        kind = exc.error_type if isinstance(exc, AdapterError) else None
        return Answer(side, adapter, False, masked(str(exc)) or type(exc).__name__,
                      time.monotonic() - began, kind)
    except Exception as exc:  # a plugin's bug: reported, not raised into the API
        log.exception("check failed")
        return Answer(side, adapter, False, masked(f"{type(exc).__name__}: {exc}") or "",
                      time.monotonic() - began, "system")
    return Answer(side, adapter, True, masked(message) or "ok", time.monotonic() - began)


def _source(plan: JobPlan, ctx: Any, identifier: str | None, timeout: float) -> str:
    try:
        source = plan.source_cls(plan.source_options, identifier)
    except SourceError:
        watch = plan.config.watch
        if identifier is None and watch is not None:  # no fixed file: what arrives
            return _folder(watch.path)
        raise
    if isinstance(source, AsyncSource):
        return asyncio.run(asyncio.wait_for(source.check(ctx), timeout))
    return source.check(ctx)


def _folder(path: Path) -> str:
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        raise SourceError(f"no fixed file, and the watched folder {path} is not a readable "
                          "folder")
    return f"no fixed file: reads what arrives in the watched folder {path} (readable)"


def _target(plan: JobPlan, ctx: Any, timeout: float) -> str:
    target = plan.make_target()
    schema = TargetSchema(job=plan.name, columns=plan.columns,
                          key=tuple(getattr(plan.target_options, "key", ()) or ())
                          or (plan.columns[0],),
                          constants=dict(plan.config.constants),
                          source_type=plan.source_cls.name, source_identifier="")
    if isinstance(target, AsyncRecordTarget):
        return asyncio.run(asyncio.wait_for(target.check(schema, ctx), timeout))
    return target.check(schema, ctx)
