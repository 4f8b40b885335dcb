"""The pytest plugin for adapter authors (entry point ``pytest11``: loaded by itself).

Fixtures:

    syncd_database_url   an empty database for the test: SQLite by default, or a fresh
                         one on the server named by ``--syncd-database`` (or the
                         ``SYNCD_TEST_DATABASE_URL`` variable), e.g. postgresql://…
    syncd_store          a ``Store`` on it, closed after the test
    syncd_engine         a factory: ``syncd_engine({"job": {...}}, adapters=[MyTarget])``
    memory_remote        a running ``MemoryRemote`` (an HTTP server with fault injection)

The contract suites (``syncd.testing.SourceContract`` and the target ones) use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from syncd.engine import Engine
from syncd.store import Store
from syncd.testing.engine import (
    DATABASE_ENV,
    database_url_from_env,
    make_engine,
    temporary_database,
)
from syncd.testing.remote import MemoryRemote


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("syncd", "syncd adapter tests")
    group.addoption("--syncd-database", default=None, metavar="URL",
                    help="a PostgreSQL or MariaDB server URL; every test gets a fresh "
                         f"database on it (default: ${DATABASE_ENV}, else SQLite)")


@pytest.fixture
def syncd_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = request.config.getoption("--syncd-database") or database_url_from_env()
    with temporary_database(url) as fresh:
        yield fresh


@pytest.fixture
def syncd_store(syncd_database_url: str, tmp_path: Path) -> Iterator[Store]:
    store = Store.open(syncd_database_url, tmp_path / "syncd-state")
    yield store
    store.close()


@pytest.fixture
def syncd_engine(syncd_store: Store, tmp_path: Path
                 ) -> Callable[..., Engine]:
    """Build an engine over ``syncd_store`` from job dicts (a fresh one per call, as a
    restarted daemon would be)."""

    def build(jobs: Mapping[str, Mapping[str, Any]], *, adapters: Any = (),
              plugins: Any = (), max_concurrent_runs: int = 4) -> Engine:
        return make_engine(syncd_store, tmp_path / "syncd-state", jobs, adapters=adapters,
                           plugins=plugins, max_concurrent_runs=max_concurrent_runs)

    return build


@pytest.fixture
def memory_remote() -> Iterator[MemoryRemote]:
    with MemoryRemote() as remote:
        yield remote
