"""What an adapter is: the small interfaces sources and targets implement.

A source streams ``Batch``es of rows, each ending at a checkpoint from which it can
be reopened. A target writes a batch and says what happened to each row. The engine
commits a batch's writes, the run's counters and the checkpoint in one transaction
whenever the target writes to the store's database, which is what makes a run
resumable at any instant.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog
from pydantic import BaseModel, ConfigDict

ErrorType = Literal[
    "validation", "parsing", "network", "auth", "rate_limit", "conflict", "target", "system"
]
Checkpoint = dict[str, Any]
Row = tuple[Any, ...]


class Options(BaseModel):
    """Base of every adapter's options: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ItemError:
    """One record that could not be synced; stored in ``sync_errors``."""

    type: ErrorType
    code: str
    message: str
    item: str = ""
    retryable: bool = False


@dataclass(slots=True)
class Batch:
    """Rows read since the previous checkpoint, in the order of the requested fields.

    ``items`` names each row for error reports (e.g. ``"line 12"``); ``errors`` are
    the records of this stretch that could not be read at all.
    """

    rows: list[Row]
    items: list[str]
    checkpoint: Checkpoint
    errors: list[ItemError] = field(default_factory=list)
    skipped: int = 0
    progress: int = 0  # position reached, in the unit of Source.size (e.g. bytes)


@dataclass(slots=True)
class WriteResult:
    """What a target did with a batch."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[ItemError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TargetSchema:
    """The shape of what a job writes: ``columns`` in row order, then ``constants``."""

    job: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    constants: Mapping[str, Any]
    source_type: str
    source_identifier: str
    scope: str | None = None  # what a full sync covers (e.g. one drive); None: the whole job


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an adapter may use while a run executes."""

    run_id: int
    job: str
    log: structlog.typing.FilteringBoundLogger
    store: Any  # syncd.store.Store; typed loosely so adapters need not import the store
    state_dir: Path | None  # where an adapter may keep files of its own
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A finished run, as handed to ``syncd_run_finished``."""

    run_id: int
    job: str
    trigger: str
    status: str
    counters: Mapping[str, int]
    error_message: str | None


class Source(abc.ABC):
    """A stream of records, reopenable at any checkpoint it produced."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Any, identifier: str | None = None) -> None:
        self.options = options
        self.identifier_override = identifier

    @property
    @abc.abstractmethod
    def identifier(self) -> str:
        """What is read (a path or URL): runs of one job and identifier never overlap."""

    def fingerprint(self) -> dict[str, Any] | None:
        """A digest of the source; a different one makes a resumed run start over."""
        return None

    def unchanged_since(self, fingerprint: dict[str, Any]) -> bool:
        """At the end of a read: was the source left alone while it was read?

        By default its fingerprint is taken again; a source may judge by what it
        actually read (e.g. the open file, which a rename over it leaves whole).
        """
        return self.fingerprint() == fingerprint

    def size(self) -> int | None:
        """Total progress units (e.g. bytes) when known, for progress bars."""
        return None

    @property
    def scope(self) -> str | None:
        """What a full read covers, when less than the whole job (e.g. one USB drive).

        ``on_missing`` then only touches the records of that scope.
        """
        return None

    @abc.abstractmethod
    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> Iterator[Batch]:
        """Yield batches of ``fields`` values, starting after ``checkpoint``."""


class Target(abc.ABC):
    """Somewhere records are written, upserted by key."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    #: True when writes go to the store's database, so they commit with the checkpoint.
    transactional: ClassVar[bool] = False

    def __init__(self, options: Any) -> None:
        self.options = options

    @abc.abstractmethod
    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        """Prepare to write (create or migrate a table, log in)."""

    @abc.abstractmethod
    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        """Upsert ``rows`` (values in ``schema.columns`` order) and classify each."""

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        """After a full sync, mark unavailable or delete what was not seen; return how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` acquired."""
