"""Sources: streams of records, reopenable at any checkpoint they produced."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

from syncd.adapters.capabilities import SourceCapabilities
from syncd.adapters.context import RunContext
from syncd.adapters.records import Batch, Checkpoint, LineDigests, Options


class _SourceBase:
    """What every source declares and answers before a run starts."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    # declared by the class; not a ClassVar only so that a source wrapping another
    # (the engine's RecordKeySource) can take the wrapped one's per instance
    capabilities: SourceCapabilities = SourceCapabilities()

    def __init__(self, options: Any, identifier: str | None = None) -> None:
        self.options = options
        self.identifier_override = identifier

    @property
    @abc.abstractmethod
    def identifier(self) -> str:
        """What is read (a path or URL): runs of one job and identifier never overlap."""

    def fingerprint(self) -> dict[str, Any] | None:
        """A digest of the source; a different one makes a resumed run start over, and
        one that changes while a run reads fails that run (retryable)."""
        return None

    def unchanged_since(self, fingerprint: dict[str, Any]) -> bool:
        """At the end of a read: was the source left alone while it was read?

        By default its fingerprint is taken again; a source may judge by what it
        actually read (e.g. the open file, which a rename over it leaves whole).
        """
        return self.fingerprint() == fingerprint

    def content_digest(self, fingerprint: dict[str, Any]) -> str | None:
        """A digest of every record the source holds, told by this run's ``fingerprint``
        alone (a whole file's sha256), or None (the default). Equal digests must mean
        equal records: a run whose digest, job and target match its job's last
        completed run completes without reading (``syncd.engine.unchanged``)."""
        return None

    def size(self) -> int | None:
        """Total progress units (e.g. bytes) when known, for progress bars."""
        return None

    def header(self) -> list[str] | None:
        """The field names, read before a run (``capabilities.header``); None: unknown."""
        return None

    @property
    def scope(self) -> str | None:
        """What a full read covers, when less than the whole job (e.g. one USB drive).

        ``on_missing`` then only touches the records of that scope.
        """
        return None

    def open(self, ctx: RunContext) -> None:
        """Called once before reading, with the run's context (secrets, HTTP, log)."""


class Source(_SourceBase, abc.ABC):
    """A source read in the run's worker thread."""

    @abc.abstractmethod
    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> Iterator[Batch]:
        """Yield batches of ``fields`` values, starting after ``checkpoint``."""

    def line_digests(self) -> LineDigests | None:
        """A digest of each line, without parsing, for a source of one record per line
        (a text file); None (the default) when it has none. Where a line's digest
        equals the same line's in the last run, and the target is as that run left it,
        the run does not parse it: it reads only the others (``read_lines``)."""
        return None

    def read_lines(self, fields: Sequence[str], positions: Sequence[int],
                   batch_rows: int) -> Iterator[Batch]:
        """The records on the lines at ``positions`` only (ascending; 0 is the first line
        ``line_digests`` digested), ``batch_rows`` lines a batch, each batch counting
        in ``unread`` the lines it passed over; the last batch reaches the source's end.
        Checkpoints are ``read``'s. Asked only of a source whose ``line_digests`` is
        not None."""
        raise TypeError(f"the {self.name} source reads no chosen lines")

    def check(self, ctx: RunContext) -> str:
        """``syncd check``: can the source be reached and read (authenticated)?

        Called on a fresh instance, instead of ``open``. Touch no data and read no more
        than needed (open a file, list a folder, one GET of a base path with the
        credentials). Return one line saying what answered; raise an ``AdapterError``
        or ``SourceError`` saying what did not, never with a secret in it. The default
        opens the source (``open``) and reports that it has no check of its own.
        """
        self.open(ctx)
        return "opened; this source has no check of its own"


class AsyncSource(_SourceBase, abc.ABC):
    """A source for async-first libraries (aiohttp, Playwright): read on an event loop
    of the run's own, so a slow remote never blocks the daemon's loop."""

    @abc.abstractmethod
    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> AsyncIterator[Batch]:
        """Yield batches of ``fields`` values, starting after ``checkpoint``."""

    async def aclose(self) -> None:
        """Release what reading acquired (sessions, browsers), on the run's loop."""

    async def check(self, ctx: RunContext) -> str:
        """Like ``Source.check``, on an event loop of the check's own; the default opens
        the source and closes it again (``aclose``)."""
        self.open(ctx)
        await self.aclose()
        return "opened and closed; this source has no check of its own"
