"""Loading what every command needs: the config, the plugins and the jobs resolved."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pluggy

from syncd.config import Config, Secret, load_config
from syncd.engine.plan import JobPlan, resolve_jobs
from syncd.engine.worker import AUTO_MIN_SIZE, WorkerSettings
from syncd.errors import ConfigError
from syncd.plugins import Registry, get_pluginmanager
from syncd.remote.http import HttpFactory
from syncd.store import Store
from syncd.store.claims import Claims, this_process


@dataclass(frozen=True, slots=True)
class Setup:
    path: Path
    config: Config
    pm: pluggy.PluginManager
    registry: Registry
    plans: dict[str, JobPlan]

    @property
    def state_dir(self) -> Path:
        return self.config.daemon.state_dir.resolve()

    def http(self) -> HttpFactory:
        """HTTP clients for the runs: ``[remotes.NAME]`` settings, OAuth2 state in state_dir."""
        return HttpFactory.from_config(self.config.remotes, self.state_dir)

    def database_url(self) -> str:
        """``[daemon] database``, a secret revealed."""
        database = self.config.daemon.database
        if isinstance(database, Secret):
            try:
                return database.reveal()
            except LookupError as exc:
                raise ConfigError(self.path, "daemon.database", str(exc)) from None
        return database

    def open_store(self) -> Store:
        fleet = self.config.fleet
        claims = Claims(this_process(self.host), fleet.lease_seconds)
        store = Store.open(self.database_url(), self.state_dir, claims)
        if fleet.enabled:
            from syncd.store.fleet import check_fleet_store

            check_fleet_store(store, self.path, fleet)
        return store

    def worker_settings(self, store: Store) -> WorkerSettings | None:
        """What runs in worker processes need (``[daemon] isolate_runs``), else None."""
        daemon = self.config.daemon
        if daemon.isolate_runs is False:
            return None
        min_size = AUTO_MIN_SIZE if daemon.isolate_runs == "auto" else 0
        plugins = {c.__module__ for plan in self.plans.values()
                   for c in (plan.source_cls, plan.target_cls)}
        return WorkerSettings(self.database_url(), self.state_dir, store.claims.holder,
                              store.claims.lease_s, daemon.log_format, tuple(sorted(plugins)),
                              min_size)

    @property
    def host(self) -> str:
        """``[daemon] host``, else the host name: the daemon's name in a fleet."""
        return self.config.daemon.host or socket.gethostname()


def load(path: Path, load_entrypoints: bool = True) -> Setup:
    """Read and check the config at ``path`` against the registered adapters."""
    config = load_config(path)
    pm, registry = get_pluginmanager(load_entrypoints=load_entrypoints)
    plans = resolve_jobs(config, registry, path)
    return Setup(path, config, pm, registry, plans)
