"""Targets: where records go. Two kinds, by where the truth about a record lives.

``Target`` (``capabilities.store``): writes into the store's own database through
``ctx.sql``, in the batch's transaction. The table itself says what is new, changed
or unchanged (by content hash), so it takes whole batches and answers with counts.

``RecordTarget`` / ``AsyncRecordTarget``: everything else (REST APIs, browsers,
email, files). The engine keeps the id map for it (the outbox): it hashes each
record, sends nothing for an unchanged one, commits a ``pending`` intent with a
stable idempotency key before a create, and hands the target one ``Change`` per
record; the target answers one ``Result`` per change.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from syncd.adapters.capabilities import TargetCapabilities
from syncd.adapters.context import RunContext
from syncd.adapters.records import Change, Options, Result, Row, TargetSchema, WriteResult

#: ``Target.preparer``'s function: a batch's rows and items, as ``write`` wants them
Preparer = Callable[[list[Row], list[str]], tuple[list[Row], list[str]]]


class _TargetBase:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities()

    def __init__(self, options: Any) -> None:
        self.options = options


class Target(_TargetBase, abc.ABC):
    """A batch writer into the store's database (``TargetCapabilities(store=True)``)."""

    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(
        store=True, delete=True, mark_unavailable=True)

    @abc.abstractmethod
    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        """Prepare to write (create or migrate a table)."""

    @abc.abstractmethod
    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        """Upsert ``rows`` (values in ``schema.columns`` order) and count each outcome."""

    def preparer(self) -> Preparer | None:
        """Work on a batch that needs neither the database nor the run (content hashes,
        key order), which the engine may do in another process while the batch before
        it is written (a large file of a ``portable`` source).

        A picklable function (module-level, or a ``functools.partial`` of one) of a
        batch's rows and items, returning them as ``write`` wants them: reordered if
        the order does not matter to the target, as a ``list`` subclass carrying what
        it computed. ``write`` must still take plain rows: the engine hands it those
        whenever it read the source itself or changed the batch (a dropped duplicate,
        a pair's import). Called after ``open``; None (the default) prepares nothing, and
        the run then reads its source in its own thread.
        """
        return None

    def empty(self) -> bool:
        """Whether the target held no record when ``open`` looked (a first load).

        Every key the run writes is then new to it, unless the run wrote it before: the
        batches of a ``portable`` source are screened each on its own, and a key
        repeated across batches shows in ``write``'s counts (a row counted updated or
        unchanged, not inserted), which the run then checks and writes again. False
        (the default) has every key indexed as it is read.
        """
        return False

    def revision(self) -> Any:
        """What the target holds, as a JSON value that any write into it changes (by this
        run's job or any other); None (the default) when it cannot tell cheaply, or when
        another job wrote into it since ``open`` (a row this run wrote may have been
        overwritten: the run then leaves no revision for the next to trust).

        Asked before a run reads, and when a run completes, inside its last transaction:
        a run finding the revision its job's last completed run left, for the same source
        content and job, completes without reading (``syncd.engine.unchanged``).
        """
        return None

    def rolled_back(self) -> None:
        """The transaction of the last ``write`` was rolled back, and the run writes the
        batch again (a key it had repeated): undo what that write counted (e.g. toward
        its ``revision``). The default does nothing."""

    def unread(self, count: int) -> None:
        """``count`` records the run passed over unread, known to be as the last run
        left them (``Batch.unread``), as if they had been written unchanged: a target
        that tells its ``revision`` by what a run saw counts them. The default does
        nothing."""

    def forget(self, keys: Sequence[Row]) -> None:
        """Forget what was last written for these keys (e.g. its content hash): another
        job changed their rows since, so the next ``write`` of them writes, even what
        equals the last write (a bidirectional pair's import, after its export sent a
        local change). Inside the batch's transaction. The default does nothing."""

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        """After a full sync, mark unavailable or delete what was not seen; return how many."""
        return 0

    def finish(self) -> None:
        """The run wrote its last batch (and reconciled): make what was written final,
        e.g. rename a file into place, before the run is recorded completed. Raising
        fails the run. Called for targets outside the store's database (``store``
        False) only; in a dry run too, where it changes nothing. The default does
        nothing."""

    def close(self) -> None:
        """Release what ``open`` acquired."""

    def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """``syncd check``: is the database reachable and the table usable?

        Touch no data: unlike ``open``, create or alter nothing that outlives the
        check. One line on success; an ``AdapterError`` or ``JobError`` otherwise.
        The default only reports that there is nothing to check.
        """
        return "nothing to check"


class RecordTarget(_TargetBase, abc.ABC):
    """A target reached one record at a time, in the run's worker thread.

    ``gather``: ``apply`` only collects a change (answering what it will come to) and
    ``finish`` sends every collected change at once, e.g. one digest mail per run.
    Until ``finish`` answers, the id map keeps those changes ``pending`` (a failed or
    killed run leaves them for the next), so each is sent once it is accepted.
    """

    gather: bool = False

    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        """Prepare (read options, build clients); log in lazily, on the first change."""

    def prepare(self, changes: list[Change]) -> list[Change]:
        """Look at a batch before its intents commit (reads only, also in a dry run): may
        return changes with ``sent`` set (e.g. a final name), which the intent records."""
        return changes

    @abc.abstractmethod
    def apply(self, change: Change) -> Result:
        """Send one change; a failure is a ``Result.failed`` (or an ``AdapterError``)."""

    def preview(self, change: Change) -> Result | None:
        """A dry run's look at one change: what would come of it (``created``,
        ``updated``, ``kept``, ``conflict`` …) with ``planned`` naming the requests it
        would send, secrets masked. Reads only (a conflict check may read the remote
        record). None: the engine counts the change by its kind and shows no requests."""
        return None

    def find(self, change: Change) -> str | None:
        """The remote id of ``change``'s record if an interrupted attempt created it
        (``capabilities.lookup``): by name, by the idempotency key, by a search."""
        return None

    def finish(self, gathered: list[Change]) -> list[Result]:
        """The run read everything (not called in a dry run). A ``gather`` target sends
        ``gathered``, every change applied by this or an earlier run and not yet
        accepted, and answers one ``Result`` per change; others get ``[]``. Raising an
        ``AdapterError`` fails the run and leaves the gathered changes pending."""
        return []

    def close(self) -> None:
        """Release what ``open`` acquired; called even when the run fails."""

    def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """``syncd check``: can the remote be reached and does it take the credentials?

        Called on a fresh instance, instead of ``open``. Touch no data: no create,
        update or delete (a GET or HEAD of a base path with the credentials, a login
        without a change). One line on success; an ``AdapterError`` (``AuthError`` for
        refused credentials, ``NetworkError`` for no answer) otherwise, never with a
        secret in it. The default opens the target and closes it again, and reports
        that it has no check of its own.
        """
        self.open(schema, ctx)
        self.close()
        return "opened and closed; this target has no check of its own"


class AsyncRecordTarget(_TargetBase, abc.ABC):
    """A target for async-first libraries: up to ``capabilities.concurrency`` changes in
    flight at once, on an event loop of the run's own. ``gather`` as for ``RecordTarget``."""

    gather: bool = False

    async def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        """Prepare (sessions, browser); log in lazily, on the first change."""

    async def prepare(self, changes: list[Change]) -> list[Change]:
        """Like ``RecordTarget.prepare``."""
        return changes

    @abc.abstractmethod
    async def apply(self, change: Change) -> Result:
        """Send one change; a failure is a ``Result.failed`` (or an ``AdapterError``)."""

    async def preview(self, change: Change) -> Result | None:
        """Like ``RecordTarget.preview``."""
        return None

    async def find(self, change: Change) -> str | None:
        """Like ``RecordTarget.find``."""
        return None

    async def finish(self, gathered: list[Change]) -> list[Result]:
        """Like ``RecordTarget.finish``."""
        return []

    async def close(self) -> None:
        """Release what ``open`` acquired; called even when the run fails."""

    async def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """Like ``RecordTarget.check``, on an event loop of the check's own."""
        await self.open(schema, ctx)
        await self.close()
        return "opened and closed; this target has no check of its own"
