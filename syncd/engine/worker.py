"""Runs in a worker process of their own (``[daemon] isolate_runs``).

A run in a thread shares the daemon's GIL: while it parses and hashes a large file,
the control API on the event loop answers at half its idle rate. In a process it has
its own interpreter, at a lower CPU priority (``nice``), and an adapter that crashes
the interpreter fails its run instead of taking the daemon down.

The child is forked from a ``forkserver`` that has syncd imported already, so a
small file pays a few tens of milliseconds, not a second start-up. It opens its own
connection to the store under the daemon's claim name, so its writes stay fenced by
the daemon's claim. Over one pipe it sends progress and its outcome and receives stop
requests; when the pipe closes (the daemon was killed), it exits at once, as if it
had been killed with it, and the run resumes from its last checkpoint. Only runs that
write the store's own database from a local source qualify: remote runs share the
daemon's rate limits, and dry runs of ``sync --all`` share their plan.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.adapters import AsyncSource, Source
from syncd.engine.executor import RunExecutor
from syncd.engine.failures import fail_run
from syncd.engine.plan import JobPlan
from syncd.engine.runs import Outcome, Progress, Stop
from syncd.errors import RetryableError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

RUN_NICE = 10  # a run yields the CPU to the API (and everything else) when it is short
#: ``isolate_runs = "auto"``: sources this large (a CSV file of ~250,000 rows) take a
#: few seconds or more, against a process's ~25 ms more per run
AUTO_MIN_SIZE = 16 * 1024 * 1024
STOP_POLL_S = 0.1  # how often the daemon's side looks for a stop to pass on
PARENT_GONE = 70  # the child's exit status when the daemon went away


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What a run's process needs of the daemon's setup (pickled to the child)."""

    database: str = field(repr=False)  # the store's URL, secret revealed: never shown
    state_dir: Path
    holder: str  # the daemon's claim name: the child writes as the daemon
    lease_s: float
    log_format: str
    #: modules the fork server imports once, so that no run's process does (its plugins)
    preload: tuple[str, ...] = ()
    #: a run goes to a process only when its source is at least this large (``auto``)
    min_size: int = 0
    nice: int = RUN_NICE


@dataclass(frozen=True, slots=True)
class RunSpec:
    settings: WorkerSettings
    plan: JobPlan
    run_id: int
    source: Source | AsyncSource
    dry_run: bool
    allow_mass_missing: bool


class WorkerDied(RetryableError):
    """The run's process ended without an outcome (killed, or crashed)."""


class NotSent(Exception):
    """The run could not be handed to a process (its source does not pickle)."""


def qualifies(plan: JobPlan, source: Source | AsyncSource, dry_plan: Any,
              min_size: int = 0) -> bool:
    """Whether a run goes to a process: a local source (``min_size`` or larger) into the
    store's database."""
    if not (dry_plan is None and plan.target_cls.capabilities.store
            and not source.capabilities.remote and plan.pair is None):
        return False
    if not min_size:
        return True
    try:
        size = source.size()
    except Exception:  # unreadable: the run says so, in a thread like any other
        return False
    return size is not None and size >= min_size


_context: Any = None


def _forkserver(preload: tuple[str, ...]) -> Any:
    global _context
    if _context is None:
        import multiprocessing  # only a daemon with a large run pays for it

        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["syncd.engine.worker", "syncd.store", *preload])
    return _context


def execute_run(executor: RunExecutor, settings: WorkerSettings | None) -> Outcome:
    """Execute a run in this (worker) thread, or in a process of its own where
    ``settings`` are given and it qualifies."""
    if settings is None or not qualifies(executor.plan, executor.source, executor.dry_plan,
                                         settings.min_size):
        return executor.execute()
    spec = RunSpec(settings, executor.plan, executor.run_id, executor.source,
                   executor.dry_run, executor.allow_mass_missing)
    try:
        outcome, progress = run_in_process(spec, executor.stop,
                                           executor.on_progress or (lambda _: None))
    except NotSent as exc:  # nothing ran yet: the thread it is
        executor.log.info("run stays in a thread: it cannot be sent to a process",
                          reason=str(exc))
        return executor.execute()
    except WorkerDied as exc:
        return fail_run(executor.store, executor.run_id, executor.log, exc)
    executor.progress = progress
    return outcome


def run_in_process(spec: RunSpec, stop: Stop,
                   on_progress: Callable[[Progress], None]) -> tuple[Outcome, Progress]:
    """Execute ``spec`` in a child process; blocks (call it in a thread). Passes on
    ``stop`` and progress; raises ``WorkerDied`` if the child ends without an outcome."""
    context = _forkserver(spec.settings.preload)
    ours, theirs = context.Pipe()
    child = context.Process(target=_child, args=(theirs, spec), daemon=True,
                            name=f"syncd-run-{spec.run_id}")
    try:
        child.start()  # pickles the spec: a plugin's source may not allow it
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        ours.close()
        raise NotSent(str(exc)) from exc
    finally:
        theirs.close()
    passed = ""
    try:
        while True:
            if stop.is_set() and stop.reason != passed:
                passed = stop.reason
                ours.send(passed)
            if not ours.poll(STOP_POLL_S):
                if not child.is_alive() and not ours.poll():
                    break
                continue
            try:
                kind, value = ours.recv()
            except EOFError:
                break
            if kind == "progress":
                on_progress(value)
            elif kind == "crash":
                raise WorkerDied(f"the run's worker process failed: {value}")
            else:
                return value
    finally:
        ours.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    code = child.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    raise WorkerDied(f"the run's worker process ended without finishing the run ({how}); "
                     "retry it to resume from its last checkpoint")


def _child(pipe: Connection, spec: RunSpec) -> None:
    """The run's process: the daemon's signals are not ours (it passes them on)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = spec.settings
    os.nice(settings.nice)
    from syncd import logs
    from syncd.store import Store
    from syncd.store.claims import Claims
    from syncd.store.database import open_database

    logs.configure(settings.log_format)
    import structlog

    structlog.get_logger("syncd.run").info("run in a worker process", run_id=spec.run_id,
                                           job=spec.plan.name, pid=os.getpid())
    stop = Stop()
    send = sender(pipe)

    def listen() -> None:
        try:
            while True:
                stop.request(pipe.recv())
        except (EOFError, OSError):
            os._exit(PARENT_GONE)  # the daemon is gone: so is its run, until it resumes

    threading.Thread(target=listen, name="syncd-run-stop", daemon=True).start()
    try:  # the daemon made the store's schema current already
        store = Store(open_database(settings.database, settings.state_dir),
                      Claims(settings.holder, settings.lease_s))
    except Exception as exc:  # the daemon records it: the run fails, retryably
        send(("crash", str(exc).strip()))
        return
    try:
        executor = RunExecutor(store, spec.plan, spec.run_id, spec.source, stop,
                               on_progress=lambda report: send(("progress", report)),
                               dry_run=spec.dry_run, state_dir=settings.state_dir,
                               allow_mass_missing=spec.allow_mass_missing)
        outcome = executor.execute()  # records every failure of the run itself
        send(("outcome", (outcome, executor.progress)))
    finally:
        store.close()


def sender(pipe: Connection) -> Callable[[tuple[str, Any]], None]:
    """Sends to the daemon from any thread; exits at once, as ``listen`` does, when the
    daemon is gone. Else the run would take the broken pipe for its own failure and
    record itself failed, and the next start would not resume it."""
    sending = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        try:
            with sending:  # pickled as it is now: the run goes on changing it
                pipe.send(message)
        except (EOFError, OSError):  # BrokenPipeError, ConnectionResetError
            os._exit(PARENT_GONE)

    return send
