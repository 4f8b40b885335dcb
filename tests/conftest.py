"""Shared fixtures: stores on real SQLite files and the PostgreSQL and MariaDB servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
import pytest

from syncd.store import Store

PG_ADMIN = os.environ.get("SYNCD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN = os.environ.get("SYNCD_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _server_up(kind: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        if kind == "postgres":
            db = pw.PostgresqlDatabase("test", host="127.0.0.1", user="postgres")
        else:
            db = pw.MySQLDatabase("test", host="127.0.0.1", user="root", password="")
        db.connect()
        db.close()
    except Exception as exc:
        return f"{kind} server on 127.0.0.1 not reachable: {exc}"
    return None


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on the backend named by ``request.param`` (default sqlite)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        yield ""
        return
    reason = _server_up(kind)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"syncd_test_{uuid.uuid4().hex[:12]}"
    if kind == "postgres":
        admin = pw.PostgresqlDatabase("test", host="127.0.0.1", user="postgres")
        admin.execute_sql(f'CREATE DATABASE "{name}"')
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        admin.execute_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    else:
        admin = pw.MySQLDatabase("test", host="127.0.0.1", user="root", password="")
        admin.execute_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"mysql://root@127.0.0.1:3306/{name}"
        admin.execute_sql(f"DROP DATABASE `{name}`")
    admin.close()


BACKENDS = [pytest.param("sqlite"),
            pytest.param("postgres", marks=pytest.mark.postgres),
            pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store.open(database_url, tmp_path / "state")
    yield s
    s.close()
