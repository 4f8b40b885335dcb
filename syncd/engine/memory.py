"""Small adapters for tests and for plugin authors: records in memory, records as JSON.

They implement the same interfaces as real adapters, so engine tests are fast and
exact; ``fail_at`` injects transient failures to exercise retries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from pydantic import Field

from syncd import hookimpl
from syncd.adapters import (
    Batch,
    Checkpoint,
    ItemError,
    Options,
    Row,
    RunContext,
    Source,
    SqlSession,
    Target,
    TargetSchema,
    WriteResult,
)
from syncd.errors import RetryableError


class MemorySource(Source):
    """Records from ``options.records`` (a list of dicts); checkpoint = next index."""

    name = "memory"
    description = "records held in memory (tests)"

    class Options(Options):
        records: list[dict[str, Any]] = Field([], description="the records")
        label: str = Field("memory", description="identifier of this source")
        fail_at: dict[int, int] = Field({}, description="index -> transient failures there")

    def __init__(self, options: Any, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.failures = dict(options.fail_at)

    @property
    def identifier(self) -> str:
        return self.identifier_override or self.options.label

    def size(self) -> int | None:
        return len(self.options.records)

    def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
             batch_rows: int) -> Iterator[Batch]:
        records = self.options.records
        start = checkpoint["index"] if checkpoint else 0
        rows: list[Row] = []
        items: list[str] = []
        errors: list[ItemError] = []
        for index in range(start, len(records)):
            if self.failures.get(index, 0) > 0:
                self.failures[index] -= 1
                raise RetryableError(f"injected failure at record {index}")
            record = records[index]
            if all(f in record for f in fields):
                rows.append(tuple(record[f] for f in fields))
                items.append(f"record {index}")
            else:
                errors.append(ItemError("validation", "missing_field", "a field is missing",
                                        item=f"record {index}"))
            if len(rows) + len(errors) >= batch_rows:
                yield Batch(rows, items, {"index": index + 1}, errors, progress=index + 1)
                rows, items, errors = [], [], []
        yield Batch(rows, items, {"index": len(records)}, errors, progress=len(records))


class MemoryTarget(Target):
    """Upserts records, as JSON, into a table of the store's database, in the batch's
    transaction like any store target; ``MemoryTarget.tables[name]`` reads them back
    as a dict from key to record (with ``_available``)."""

    name = "memory"
    description = "records as JSON in a table of the store (tests)"
    tables: ClassVar[MemoryTables]

    class Options(Options):
        table: str = Field("memory", description="name the records are kept under")
        key: list[str] = Field(["id"], description="key fields")

    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        if ctx.sql is None:
            raise RuntimeError("the memory target writes through the store (ctx.sql)")
        self.schema, self.ctx, self.sql = schema, ctx, ctx.sql
        self.table = MemoryTarget.tables.attach(self.options.table, ctx.sql)
        self.writes = 0

    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        result = WriteResult()
        names = (*self.schema.columns, *self.schema.constants)
        stored = self.tables.get(self.options.table, {})
        p = self.sql.param
        for row in rows:
            record = dict(zip(names, (*row, *self.schema.constants.values()), strict=True))
            key = tuple(record[k] for k in self.options.key)
            before = stored.get(key)
            if before == {**record, "_available": True}:
                result.unchanged += 1
                continue
            if before is None:
                result.inserted += 1
                statement = f"INSERT INTO {self.table} (record, available, k) VALUES ({p}, 1, {p})"
            else:
                result.updated += 1
                statement = f"UPDATE {self.table} SET record = {p}, available = 1 WHERE k = {p}"
            stored[key] = {**record, "_available": True}
            if not self.ctx.dry_run:
                self.sql.execute(statement, (json.dumps(record), _key_text(key)))
                self.writes += 1
        return result

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        seen = set(seen_keys)
        stored = self.tables.get(self.options.table, {})
        gone = [k for k, v in stored.items() if k not in seen and v["_available"]]
        if not self.ctx.dry_run:
            p = self.sql.param
            for key in gone:
                statement = (f"DELETE FROM {self.table} WHERE k = {p}" if on_missing == "delete"
                             else f"UPDATE {self.table} SET available = 0 WHERE k = {p}")
                self.sql.execute(statement, (_key_text(key),))
        return len(gone)


class MemoryTables:
    """``MemoryTarget.tables``: the records of each name, read from the store last used."""

    def __init__(self) -> None:
        self._sql: SqlSession | None = None

    def attach(self, name: str, sql: SqlSession) -> str:
        """Use ``sql`` from now on; make the table of ``name``; return its quoted name."""
        self._sql = sql
        table = sql.quote(_table_name(name))
        sql.execute(f"CREATE TABLE IF NOT EXISTS {table} (k VARCHAR(255) PRIMARY KEY, "
                    "record TEXT NOT NULL, available INTEGER NOT NULL)")
        return table

    def _exists(self, name: str) -> bool:
        try:
            return self._sql is not None and self._sql.table_exists(_table_name(name))
        except Exception:  # the store of an earlier test is gone
            self._sql = None
            return False

    def __getitem__(self, name: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        if not self._exists(name):
            raise KeyError(name)
        assert self._sql is not None
        table = self._sql.quote(_table_name(name))
        return {tuple(json.loads(k)): {**json.loads(record), "_available": bool(available)}
                for k, record, available in self._sql.execute(
                    f"SELECT k, record, available FROM {table} ORDER BY k").fetchall()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._exists(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def pop(self, name: str, default: Any = None) -> Any:
        """Drop the records of ``name``; what they were."""
        found = self.get(name, default)
        if name in self:
            assert self._sql is not None
            self._sql.execute(f"DROP TABLE {self._sql.quote(_table_name(name))}")
        return found

    def clear(self) -> None:
        """Forget the store: each test starts from a database of its own."""
        self._sql = None


MemoryTarget.tables = MemoryTables()


def _table_name(name: str) -> str:
    return "memory_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _key_text(key: tuple[Any, ...]) -> str:
    return json.dumps(list(key))


@hookimpl
def syncd_register_adapters(registry: Any) -> None:
    registry.add_source(MemorySource)
    registry.add_target(MemoryTarget)
