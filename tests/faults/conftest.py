"""Fixtures of the fault suite: fresh stores on demand, several per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import peewee as pw
import pytest

from tests.conftest import _server_up
from tests.crashkit import forget


@pytest.fixture
def new_database() -> Iterator[Callable[[str], str]]:
    """``new_database(kind)``: "" for SQLite (the workspace's own file), or the URL of
    a fresh PostgreSQL database on 127.0.0.1:5432, dropped after the test."""
    made: list[str] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return ""
        reason = _server_up("postgres")
        if reason:
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        name = f"syncd_test_{uuid.uuid4().hex[:12]}"
        admin = pw.PostgresqlDatabase("test", host="127.0.0.1", user="postgres")
        admin.execute_sql(f'CREATE DATABASE "{name}"')
        admin.close()
        made.append(name)
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    yield make
    if made:
        admin = pw.PostgresqlDatabase("test", host="127.0.0.1", user="postgres")
        for name in made:
            forget(f"postgresql://postgres@127.0.0.1:5432/{name}")
            admin.execute_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
