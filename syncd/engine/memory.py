"""In-memory adapters: a source and a target for tests and for plugin authors.

They implement the same interfaces as real adapters, so engine tests are fast and
exact; ``fail_at`` injects transient failures to exercise retries.
"""

from __future__ import annotations

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
    """Upserts into ``MemoryTarget.tables[name]``: a dict from key to record."""

    name = "memory"
    description = "a dict in memory (tests)"
    tables: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {}

    class Options(Options):
        table: str = Field("memory", description="name of the dict in MemoryTarget.tables")
        key: list[str] = Field(["id"], description="key fields")

    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        self.schema, self.ctx = schema, ctx
        self.table = self.tables.setdefault(self.options.table, {})
        self.writes = 0

    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        result = WriteResult()
        names = (*self.schema.columns, *self.schema.constants)
        for row in rows:
            record = dict(zip(names, (*row, *self.schema.constants.values()), strict=True))
            key = tuple(record[k] for k in self.options.key)
            stored = self.table.get(key)
            if stored == {**record, "_available": True}:
                result.unchanged += 1
                continue
            if stored is None:
                result.inserted += 1
            else:
                result.updated += 1
            if not self.ctx.dry_run:
                self.table[key] = {**record, "_available": True}
                self.writes += 1
        return result

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        seen = set(seen_keys)
        gone = [k for k, v in self.table.items() if k not in seen and v["_available"]]
        if not self.ctx.dry_run:
            for key in gone:
                if on_missing == "delete":
                    del self.table[key]
                else:
                    self.table[key]["_available"] = False
        return len(gone)


@hookimpl
def syncd_register_adapters(registry: Any) -> None:
    registry.add_source(MemorySource)
    registry.add_target(MemoryTarget)
