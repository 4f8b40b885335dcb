"""A store and an engine for adapter tests, built as the daemon builds them.

``make_engine`` takes job dicts as a config file would hold them and the adapter
classes (or plugin modules) under test; the in-memory source and target are always
there. ``run_job`` runs one job to its outcome from synchronous test code.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syncd.adapters import AsyncSource, Source
from syncd.config import validate
from syncd.engine import Engine, Outcome, Request, resolve_jobs
from syncd.engine import memory as memory_plugin
from syncd.plugins import Registry, get_pluginmanager
from syncd.remote.http import HttpFactory
from syncd.store import Store
from syncd.store.models import SyncRun
from syncd.store.orm import pw

#: the database a test store lives in: empty for a SQLite file in the test's folder, or
#: a PostgreSQL/MariaDB server URL (a fresh database is made on it for every test)
DATABASE_ENV = "SYNCD_TEST_DATABASE_URL"


def make_registry(adapters: Iterable[type[Any]] = (), plugins: Iterable[Any] = ()) -> Registry:
    """A registry of ``adapters`` (classes) and ``plugins`` (modules), then the memory ones.

    The first registration of a name wins, so an adapter under test named ``memory``
    replaces the in-memory one.
    """
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=tuple(plugins))
    for cls in adapters:
        if issubclass(cls, Source | AsyncSource):
            registry.add_source(cls)
        else:
            registry.add_target(cls)
    memory_plugin.syncd_register_adapters(registry)
    return registry


def make_engine(store: Store, state_dir: Path, jobs: Mapping[str, Mapping[str, Any]], *,
                adapters: Iterable[type[Any]] = (), plugins: Iterable[Any] = (),
                max_concurrent_runs: int = 4,
                remotes: Mapping[str, Mapping[str, Any]] | None = None) -> Engine:
    """An engine over ``store`` running ``jobs`` (``{"name": {"source": …, "target": …}}``),
    with ``remotes`` as ``[remotes.NAME]`` sections."""
    config = validate({"daemon": {"state_dir": str(state_dir),
                                  "max_concurrent_runs": max_concurrent_runs},
                       "remotes": {name: dict(r) for name, r in (remotes or {}).items()},
                       "jobs": {name: dict(job) for name, job in jobs.items()}})
    registry = make_registry(adapters, plugins)
    return Engine(store, resolve_jobs(config, registry, "<test>"), state_dir,
                  max_concurrent_runs, http=HttpFactory.from_config(config.remotes, state_dir))


def make_http(remotes: Mapping[str, Mapping[str, Any]] | None,
                state_dir: Path | None = None) -> HttpFactory:
    """The HTTP clients a run gets (``ctx.client(NAME)``) for ``remotes`` as
    ``[remotes.NAME]`` sections, validated as a config file's (secrets as ``{env = …}``,
    ``{file = …}``)."""
    config = validate({"remotes": {name: dict(r) for name, r in (remotes or {}).items()}})
    return HttpFactory.from_config(config.remotes, state_dir)


def run_job(engine: Engine, job: str, **request: Any) -> tuple[SyncRun, Outcome]:
    """Run ``job`` to its outcome (from synchronous code); the stored run and the outcome."""

    async def go() -> tuple[int, Outcome]:
        return await engine.run(Request(job, request.pop("trigger", "test"), **request))

    run_id, outcome = asyncio.run(go())
    run = engine.store.get_run(run_id)
    assert run is not None
    return run, outcome


@contextmanager
def temporary_database(url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``url`` (PostgreSQL or MariaDB), dropped
    afterwards; an empty ``url`` (SQLite) is given back as it is."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith(("postgres", "mysql", "mariadb")):
        yield url
        return
    base, _, _ = rest.rpartition("/")
    name = f"syncd_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(url)
    if scheme.startswith("postgres"):
        admin.execute_sql(f'CREATE DATABASE "{name}"')
        drop = f'DROP DATABASE "{name}" WITH (FORCE)'
    else:
        admin.execute_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        drop = f"DROP DATABASE `{name}`"
    try:
        yield f"{scheme}://{base}/{name}"
    finally:
        admin.execute_sql(drop)
        admin.close()


def _admin(url: str) -> pw.Database:
    from urllib.parse import urlparse

    parts = urlparse(url)
    db = parts.path.lstrip("/") or ("postgres" if parts.scheme.startswith("postgres")
                                    else "mysql")
    settings: dict[str, Any] = {"host": parts.hostname or "127.0.0.1",
                                "user": parts.username, "password": parts.password or ""}
    if parts.port:
        settings["port"] = parts.port
    if parts.scheme.startswith("postgres"):
        return pw.PostgresqlDatabase(db, **settings)
    return pw.MySQLDatabase(db, **settings)


def database_url_from_env() -> str:
    return os.environ.get(DATABASE_ENV, "")
