"""The store's database as a ``store`` target sees it (``syncd.adapters.SqlSession``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from syncd.adapters.context import Dialect
from syncd.store import local_files
from syncd.store.models import utcnow
from syncd.store.names import RESERVED_TABLES
from syncd.store.orm import pw

#: what a database says when it refuses a row (not a connection or lock problem)
REJECTED: tuple[type[Exception], ...] = (pw.IntegrityError, pw.DataError,
                                         pw.ProgrammingError, pw.InternalError, ValueError)


class StoreSqlSession:
    """DB-API access in the batch's transaction; peewee stays the store's business."""

    rejected = REJECTED

    def __init__(self, db: pw.Database, dialect: Dialect, job: str = "") -> None:
        self._db, self._job = db, job
        self.dialect: Dialect = dialect
        self.param = "%s" if dialect in ("postgres", "mysql") else "?"
        self.reserved_tables = RESERVED_TABLES

    def cursor(self) -> Any:
        return self._db.cursor()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute_sql(sql, params)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction whose driver errors surface as peewee's (``rejected``)."""
        # peewee's stubs omit the module's exception wrapper, which exists at runtime
        with self._db.atomic(), pw.__exception_wrapper__:  # type: ignore[attr-defined]
            yield

    @contextmanager
    def local_file(self, path: str) -> Iterator[bool]:
        """MySQL/MariaDB: within it, ``LOAD DATA LOCAL INFILE`` may send ``path`` and no
        other file (yields False where the connection cannot send files at all)."""
        with local_files.allowed(self._db.connection(), path) as allowed:
            yield allowed

    def table_exists(self, table: str) -> bool:
        return bool(self._db.table_exists(table))

    def columns(self, table: str) -> set[str]:
        return {c.name for c in self._db.get_columns(table)}

    def primary_key(self, table: str) -> list[str]:
        return list(self._db.get_primary_keys(table))

    def indexes(self, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
        return {i.name: (tuple(i.columns), bool(i.unique)) for i in self._db.get_indexes(table)}

    def quote(self, name: str) -> str:
        return f"`{name}`" if self.dialect == "mysql" else f'"{name}"'

    def now(self) -> datetime:
        return utcnow()

    def note_write(self, table: str) -> None:
        """Count one more write of this run's job into ``table`` (in the batch's
        transaction, so it rolls back with the batch)."""
        p, key = self.param, (table, self._job)
        counted = self.execute("UPDATE sync_table_writes SET writes = writes + 1 "
                               f"WHERE table_name = {p} AND job = {p}", key)
        if counted.rowcount == 0:  # the job's first write into the table
            first = f"INSERT INTO sync_table_writes (table_name, job, writes) VALUES ({p}, {p}, 1) "
            if self.dialect == "mysql":
                first += "ON DUPLICATE KEY UPDATE writes = writes + 1"
            else:
                first += ("ON CONFLICT (table_name, job) DO UPDATE "
                          "SET writes = sync_table_writes.writes + 1")
            self.execute(first, key)

    def writes(self, table: str) -> dict[str, int]:
        """How many writes each job made into ``table``, as ``note_write`` counted them."""
        found = self.execute("SELECT job, writes FROM sync_table_writes WHERE table_name = "
                             f"{self.param}", (table,))
        return {job: int(n) for job, n in found.fetchall()}
