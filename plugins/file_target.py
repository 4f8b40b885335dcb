"""File target: every record of a run written to one CSV, JSON or NDJSON file (SPEC §9).

The file is written under a temporary name in its final folder, flushed and fsynced,
and renamed into place only when the run completes (``finish``): a reader of the final
path sees the previous complete file or the new complete file, never a part of one.
A run that fails, is cancelled or paused removes its temporary file (``close``).

A run killed mid-way does not go on from its checkpoint (``resumable = False``): it
starts over from the first record and rewrites the temporary file from the start, so
the final file holds each record once. A kill -9 leaves a temporary file behind; the
next attempt at the same path removes it.

CSV cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a
leading ``'``, so a spreadsheet shows them as text instead of running them as formulas.
"""

from __future__ import annotations

import csv
import json
import os
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import Field, field_validator

from syncd.adapters import (
    Options,
    Row,
    RunContext,
    Target,
    TargetCapabilities,
    TargetSchema,
    WriteResult,
)
from syncd.errors import AdapterError

PLACEHOLDERS = {"date", "run"}
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def escape(value: Any) -> str:
    """A CSV cell, with a leading ``'`` where a spreadsheet would see a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def temporary(final: Path, run_id: int) -> Path:
    return final.with_name(f".{final.name}.syncd-{run_id}.tmp")


class FileTarget(Target):
    """One file per run, made visible whole when the run completes."""

    name = "file"
    description = "a CSV, JSON or NDJSON file per run, renamed into place when complete"
    capabilities = TargetCapabilities(store=False, update=True, delete=False,
                                      mark_unavailable=False, resumable=False)

    class Options(Options):
        path: str = Field(description="the file; {date}: the run's start date (UTC, "
                          "YYYY-MM-DD), {run}: its id")
        format: Literal["csv", "json", "ndjson"] = Field(
            "csv", description="csv (a header row) | json (one array) | ndjson (a line "
            "per record)")
        key: list[str] = Field([], description="the local key of each record (default: "
                               "the first mapped field)")

        @field_validator("path")
        @classmethod
        def _placeholders(cls, value: str) -> str:
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
            except ValueError as exc:
                raise ValueError(f"{exc} (write {{{{ and }}}} for braces)") from None
            unknown = names - PLACEHOLDERS
            if unknown:
                raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{date}} "
                                 "or {run}")
            if not value.strip() or value.endswith(("/", os.sep)):
                raise ValueError("expected the path of a file")
            return value

    options: FileTarget.Options

    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        self.ctx = ctx
        self.names = [*schema.columns, *schema.constants]
        self.constants = tuple(schema.constants.values())
        self.final = self.path_for(ctx)
        self.temp = temporary(self.final, ctx.run_id)
        self.count = 0
        self.done = False
        self.out: IO[str] | None = None
        if ctx.dry_run:
            return
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.final.parent.glob(f".{_glob_safe(self.final.name)}.syncd-*.tmp"):
                stale.unlink(missing_ok=True)  # a killed attempt's
            self.out = self.temp.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise AdapterError(f"cannot write {self.final.parent}: {exc.strerror}",
                               code="not_writable") from None
        if self.options.format == "csv":
            self.csv = csv.writer(self.out)
            self.csv.writerow([escape(n) for n in self.names])
        elif self.options.format == "json":
            self.out.write("[")

    def path_for(self, ctx: RunContext) -> Path:
        started = ctx.started_at or datetime.now(UTC)
        if started.tzinfo is not None:
            started = started.astimezone(UTC)
        return Path(self.options.path.format(date=started.strftime("%Y-%m-%d"),
                                             run=ctx.run_id))

    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        if self.out is not None:
            try:
                self._write(rows)
            except OSError as exc:
                raise AdapterError(f"cannot write {self.temp}: {exc.strerror}",
                                   code="write_failed") from None
        return WriteResult(inserted=len(rows))

    def _write(self, rows: Sequence[Row]) -> None:
        assert self.out is not None
        fmt = self.options.format
        for row in rows:
            values = (*row, *self.constants)
            self.count += 1
            if fmt == "csv":
                self.csv.writerow([escape(v) for v in values])
                continue
            line = json.dumps(dict(zip(self.names, values, strict=True)),
                              ensure_ascii=False, default=str)
            if fmt == "ndjson":
                self.out.write(line + "\n")
            else:
                self.out.write(("\n" if self.count == 1 else ",\n") + line)

    def finish(self) -> None:
        """Complete, fsync and rename the file into place (and fsync its folder)."""
        if self.out is None:
            return
        out, self.out = self.out, None
        try:
            if self.options.format == "json":
                out.write("\n]\n" if self.count else "]\n")
            out.flush()
            os.fsync(out.fileno())
            out.close()
            os.replace(self.temp, self.final)
            self.done = True
            folder = os.open(self.final.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            out.close()
            raise AdapterError(f"cannot complete {self.final}: {exc.strerror}",
                               code="write_failed") from None
        self.ctx.log.info("file written", path=str(self.final), records=self.count)

    def close(self) -> None:
        """A run that did not complete leaves no temporary file."""
        if self.out is not None:
            self.out.close()
            self.out = None
        if not self.done and not self.ctx.dry_run:
            self.temp.unlink(missing_ok=True)

    def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        folder = self.path_for(ctx).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # open() makes the missing folders
        if not os.access(folder, os.W_OK | os.X_OK):
            raise AdapterError(f"{folder} is not writable", code="not_writable")
        return f"{folder} is writable"


def _glob_safe(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)
