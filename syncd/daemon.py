"""``syncd run``: wires the store, the engine and systemd together, and waits.

Runs in the foreground (systemd supervises it). SIGTERM stops after each run's
current batch, leaving the runs resumable; SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from syncd import __version__, bootstrap, systemd
from syncd.api import ApiContext, make_app, serve
from syncd.api.adhoc import plan_from_spec
from syncd.api.envelope import ApiError
from syncd.api.server import addresses
from syncd.cli.exits import EXIT_FAILED, EXIT_OK
from syncd.config import Secret
from syncd.config.sealed import Sealer
from syncd.engine import Engine, JobPlan
from syncd.errors import ConfigError, JobError, UserError
from syncd.store import Store
from syncd.tasks import FATAL
from syncd.triggers.dependencies import Dependencies
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.schedule import Scheduler
from syncd.triggers.usb import UsbMonitor
from syncd.triggers.watch import FolderWatcher
from syncd.watchdog import Watchdog

if TYPE_CHECKING:
    from syncd.fleet import Fleet

API_SWITCH_INTERVAL_S = 0.001


class Daemon:
    """The long-running process; components start in ``start`` and stop in ``stop``."""

    def __init__(self, setup: bootstrap.Setup) -> None:
        self.setup = setup
        self.log = structlog.get_logger("syncd.daemon")
        self.started = time.monotonic()
        self._stopping = asyncio.Event()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.api: ApiContext | None = None
        self.runner: web.AppRunner | None = None
        self.scheduler: Scheduler | None = None
        self.dependencies: Dependencies | None = None
        self.watcher: FolderWatcher | None = None
        self.usb: UsbMonitor | None = None
        self.ingestor: FileIngestor | None = None
        self.fleet: Fleet | None = None
        self.died: str | None = None  # the background task whose death stops the daemon

    async def start(self) -> None:
        setup = self.setup
        self.store = await asyncio.to_thread(setup.open_store)
        self.engine = Engine(self.store, setup.plans, setup.state_dir,
                             setup.config.daemon.max_concurrent_runs, pm=setup.pm,
                             http=setup.http(), worker=setup.worker_settings(self.store))
        self.engine.adhoc_planner = self._adhoc_plan
        self.engine.announce.notify = setup.config.notify
        if setup.config.fleet.enabled:
            from syncd.fleet import Fleet

            self.fleet = Fleet(self.engine, setup.config.fleet)
            self.engine.fleet, self.engine.affinity = self.fleet, self.fleet.affinity
            from syncd.fleet.ratelimit import install

            install(self.store)  # remotes' rate limits hold across the fleet
        self.api = ApiContext(setup=lambda: self.setup, store=self.store, engine=self.engine,
                              token=read_token(setup))
        self.runner = await serve(make_app(self.api), setup.config.api.listen)
        resumed = await (self.fleet.start() if self.fleet else self.engine.resume_all())
        await self._start_triggers(setup)
        self.log.info("syncd started", version=__version__, config=str(setup.path),
                      jobs=list(setup.plans), resumed=resumed,
                      api=addresses(setup.config.api.listen))

    async def stop(self) -> None:
        systemd.notify("STOPPING=1")
        self.log.info("stopping: runs pause after their current batch")
        if self.api:
            self.api.closing = True  # new requests get 503 while runs pause
        await self._stop_triggers()
        if self.fleet:
            await self.fleet.stop()
        if self.engine:
            await self.engine.shutdown()
        if self.runner:
            await self.runner.cleanup()
        if self.store:
            self.store.close()
        self.log.info("syncd stopped")

    async def _start_triggers(self, setup: bootstrap.Setup) -> None:
        assert self.engine is not None
        self.scheduler = Scheduler(self.engine, setup.config)
        self.scheduler.start()
        self.dependencies = Dependencies(self.engine, setup.config)
        self.engine.listeners.append(self.dependencies)
        # one ingestor: its per-job locks keep a job's watch and USB runs from overlapping
        self.ingestor = FileIngestor(self.engine)
        self.watcher = FolderWatcher(self.ingestor, setup.config)
        await self.watcher.start()
        self.usb = UsbMonitor(self.engine, self.ingestor, setup.config)
        await self.usb.start()

    async def _stop_triggers(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        if self.usb is not None:
            await self.usb.stop()

    def reload(self) -> None:
        """Re-read the config; a bad one is logged and the old one kept."""
        systemd.notify("RELOADING=1")
        try:
            setup = bootstrap.load(self.setup.path)
        except UserError as exc:
            self.log.error("config reload failed; keeping the previous config", error=str(exc))
        else:
            self.setup = setup
            if self.engine:
                self.engine.update_plans(setup.plans)
                self.engine.http = setup.http()
                self.engine.worker = setup.worker_settings(self.engine.store)
                self.engine.announce.notify = setup.config.notify
            if self.scheduler is not None:
                self.scheduler.reload(setup.config)
            if self.dependencies is not None:
                self.dependencies.reload(setup.config)
            if self.usb is not None:
                self.usb.update_config(setup.config)
            if self.watcher is not None:
                asyncio.get_running_loop().create_task(self._rewatch(setup))
            self.log.info("config reloaded", jobs=list(setup.plans))
        systemd.notify("READY=1")

    async def _rewatch(self, setup: bootstrap.Setup) -> None:
        """Follow the watched folders of a reloaded config."""
        assert self.engine is not None
        if self.watcher is not None:
            await self.watcher.stop()
        self.watcher = FolderWatcher(self.ingestor or FileIngestor(self.engine), setup.config)
        await self.watcher.start()

    def _adhoc_plan(self, spec: Mapping[str, Any]) -> JobPlan:
        try:
            return plan_from_spec(dict(spec), self.setup.registry,
                                  Sealer(self.setup.state_dir))
        except ApiError as exc:
            raise JobError(f"cannot rebuild the ad-hoc job: {exc.message}") from None

    async def serve(self) -> None:
        """Start, notify systemd, and run until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.set_exception_handler(self._loop_error)
        # runs hold a worker thread each: the API's and the triggers' threads stay free
        loop.set_default_executor(ThreadPoolExecutor(
            self.setup.config.daemon.max_concurrent_runs + 8, thread_name_prefix="syncd"))
        await self.start()
        systemd.notify("READY=1")
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._stopping.wait()
        finally:
            watchdog.cancel()
            await self.stop()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A dead background task stops the daemon (non-zero exit: systemd restarts it)."""
        name = context.get(FATAL)
        if name is None:
            loop.default_exception_handler(context)
            return
        exc = context.get("exception")
        self.log.critical("a background task died; stopping so that systemd restarts syncd",
                          task=name, error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        if self.died is None:
            self.died = name
        self._stopping.set()

    async def _watchdog(self) -> None:
        interval = systemd.watchdog_interval()
        if interval is None or self.store is None or self.engine is None:
            return
        await Watchdog(self.store, self.engine,
                       self.setup.config.daemon.stall_seconds).run(interval)


def read_token(setup: bootstrap.Setup) -> str | None:
    """The API's bearer token, from ``[api].token_file`` (a path or a secret)."""
    source = setup.config.api.token_file
    if not source:
        return None
    secret = source if isinstance(source, Secret) else Secret(file=Path(source))
    try:
        token = secret.reveal()
    except LookupError as exc:
        raise ConfigError(setup.path, "api.token_file", str(exc)) from None
    if not token:
        raise ConfigError(setup.path, "api.token_file", "the token is empty")
    return token


def run(setup: bootstrap.Setup) -> int:
    """Serve with ``setup`` (the command line loaded it) until told to stop."""
    # Runs parse and hash in worker threads; a shorter GIL switch interval (5 ms by
    # default) keeps the API on the event loop answering promptly meanwhile.
    sys.setswitchinterval(API_SWITCH_INTERVAL_S)
    daemon = Daemon(setup)
    asyncio.run(daemon.serve())
    return EXIT_OK if daemon.died is None else EXIT_FAILED
