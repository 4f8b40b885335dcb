"""SQL source: the rows of a table, the local half of an export (SPEC §8 "SQL source").

Rows are read in ``order_by`` order (default: the table's primary key) in pages of
``batch_rows``, each page a keyset query (``WHERE (order) > (last)``), so a page never
holds a cursor open across the engine's commits and a resumed run starts right after
the last committed row: the checkpoint is the last ``order_by`` value committed. The
table is in the store's database (read through ``ctx.sql``, SELECT only) or in another
one named by ``database = "postgresql://…"`` (or mysql://, sqlite:///).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator

from syncd.adapters import Batch, Checkpoint, Options, RunContext, Source, SourceCapabilities
from syncd.errors import JobError, SourceError

from .sql_options import IDENTIFIER


class External:
    """Another database, opened by URL (peewee's ``db_url``), read with plain SQL."""

    def __init__(self, url: str) -> None:
        from playhouse.db_url import connect

        self.db = connect(url)
        scheme = url.split(":", 1)[0].lower()
        self.dialect = ("postgres" if scheme.startswith("postgres") else
                        "mysql" if scheme.startswith("mysql") else "sqlite")
        self.param = "?" if self.dialect == "sqlite" else "%s"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(sql, params)

    def quote(self, name: str) -> str:
        return f"`{name}`" if self.dialect == "mysql" else f'"{name}"'

    def primary_key(self, table: str) -> list[str]:
        return list(self.db.get_primary_keys(table))

    def close(self) -> None:
        self.db.close()


class SqlSource(Source):
    """Rows of a table, optionally filtered, in a stable order."""

    name = "sql"
    description = "rows of a table in the store's or another database (SQLite, PostgreSQL, MySQL)"
    capabilities = SourceCapabilities(store=True)

    class Options(Options):
        table: str = Field(description="table to read")
        database: str = Field("", description="empty: the store's database; or a "
                              "postgresql://, mysql:// or sqlite:/// URL")
        where: str = Field("", description="SQL condition rows must meet")
        order_by: list[str] = Field([], description="columns giving the read order and "
                                    "the checkpoint; default: the primary key")

        @field_validator("table")
        @classmethod
        def _table(cls, value: str) -> str:
            if not IDENTIFIER.match(value):
                raise ValueError("a table name is letters, digits and '_'")
            return value

        @field_validator("order_by")
        @classmethod
        def _columns(cls, value: list[str]) -> list[str]:
            bad = [c for c in value if not IDENTIFIER.match(c)]
            if bad:
                raise ValueError(f"not a column name: {', '.join(bad)}")
            return value

    options: SqlSource.Options
    external: External | None = None
    db: Any = None

    @property
    def identifier(self) -> str:
        if self.identifier_override:
            return self.identifier_override
        database = _redact(self.options.database)
        return f"{database}#{self.options.table}" if database else self.options.table

    def open(self, ctx: RunContext | None) -> None:
        self.external = External(self.options.database) if self.options.database else None
        session = self.external or (ctx.sql if ctx is not None else None)
        if session is None:
            raise JobError("the sql source needs the store's database or a database URL")
        self.db = session
        self.order = self.options.order_by or self.db.primary_key(self.options.table)
        if not self.order:
            raise JobError(f"table {self.options.table} has no primary key; set order_by")

    def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
             batch_rows: int) -> Iterator[Batch]:
        bad = [f for f in fields if not IDENTIFIER.match(f)]
        if bad:
            raise JobError(f"not a column name in the mapping: {', '.join(bad)}")
        after = list(checkpoint["after"]) if checkpoint and checkpoint.get("after") else None
        if self.db is None:  # read again without open (e.g. on_missing's key pass)
            self.open(None)
        try:
            while True:
                rows = self._page(fields, after, batch_rows)
                if not rows:
                    return
                width = len(fields)
                after = [_plain(v) for v in rows[-1][width:]]
                yield Batch(rows=[tuple(r[:width]) for r in rows],
                            items=[f"{self.options.table} {_label(r[width:])}" for r in rows],
                            checkpoint={"after": after})
                if len(rows) < batch_rows:
                    return
        finally:
            if self.external is not None:
                self.external.close()

    def _page(self, fields: Sequence[str], after: list[Any] | None,
              limit: int) -> list[tuple[Any, ...]]:
        q, p = self.db.quote, self.db.param
        order = ", ".join(q(c) for c in self.order)
        conditions, params = [], []
        if self.options.where:
            conditions.append(f"({self.options.where})")
        if after is not None:
            conditions.append(f"({order}) > ({', '.join(p for _ in self.order)})"
                              if len(self.order) > 1 else f"{order} > {p}")
            params.extend(after)
        sql = (f"SELECT {', '.join(q(f) for f in (*fields, *self.order))} "
               f"FROM {q(self.options.table)}"
               + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
               + f" ORDER BY {order} LIMIT {int(limit)}")
        try:
            return [tuple(r) for r in self.db.execute(sql, params).fetchall()]
        except Exception as exc:
            if type(exc).__name__ in ("OperationalError", "ProgrammingError", "InternalError"):
                raise SourceError(f"{self.identifier}: {exc}".strip()) from None
            raise


def _plain(value: Any) -> Any:
    """A checkpoint value as JSON keeps it (and the database compares it back)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


def _label(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
