"""The SQL source on SQLite, PostgreSQL and MariaDB: order, filter, checkpoint, resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.store import Store
from syncd.store.sql_session import StoreSqlSession
from syncd.testing.engine import make_engine, run_job
from syncd_builtin import adapters
from syncd_builtin.sql_source import SqlSource
from tests.conftest import BACKENDS


def _people(store: Store, rows: int) -> None:
    session = StoreSqlSession(store.db, store.dialect)
    p = session.param
    session.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(50), "
                    "active INTEGER)")
    for i in range(rows, 0, -1):  # inserted backwards: the read order is the key's
        session.execute(f"INSERT INTO people (id, name, active) VALUES ({p}, {p}, {p})",
                        (i, f"person {i}", i % 2))


def _job(**source: object) -> dict[str, object]:
    return {"source": {"type": "sql", "table": "people", **source},
            "target": {"type": "sql", "table": "people_copy", "key": ["pid"]},
            "mapping": {"pid": "id", "title": "name"}, "batch_rows": 3}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_rows_are_read_in_key_order_with_a_filter(store: Store, tmp_path: Path) -> None:
    _people(store, 10)
    engine = make_engine(store, tmp_path, {"copy": _job(where="active = 1")},
                         plugins=[adapters.sql_source, adapters.sql])
    run, outcome = run_job(engine, "copy")
    assert outcome.status == "completed" and run.items_inserted == 5
    stored = store.db.execute_sql("SELECT pid, title FROM people_copy ORDER BY pid").fetchall()
    assert [(str(a), b) for a, b in stored] == [(str(i), f"person {i}") for i in (1, 3, 5, 7, 9)]
    assert '"after": [9]' in run.checkpoint


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_a_resumed_read_starts_after_the_checkpoint(store: Store, tmp_path: Path) -> None:
    _people(store, 7)
    source = SqlSource(SqlSource.Options(table="people", order_by=["name"]))

    class Ctx:
        sql = StoreSqlSession(store.db, store.dialect)

    source.open(Ctx())  # type: ignore[arg-type]
    batches = list(source.read(["id"], {"after": ["person 4"]}, 2))
    assert [r[0] for b in batches for r in b.rows] == [5, 6, 7]
    assert batches[-1].checkpoint == {"after": ["person 7"]}


def test_another_database_by_url(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO people VALUES (?, ?)", [(2, "b"), (1, "a")])
    source = SqlSource(SqlSource.Options(table="people", database=f"sqlite:///{other}"))
    source.open(None)  # type: ignore[arg-type]
    assert [b.rows for b in source.read(["name"], None, 10)] == [[("a",), ("b",)]]
    assert source.identifier.endswith("#people")
