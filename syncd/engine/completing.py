"""Completing a run once its last batch is in: ``on_missing`` with its guard, the
output made final, and the run recorded completed with the mark it leaves.

A mixin of :class:`~syncd.engine.executor.RunExecutor` (split from it: reading and
writing the batches is the executor's, what follows the last one is here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog

from syncd.adapters import AsyncSource, Row, Source, TargetSchema
from syncd.engine import guard, unchanged
from syncd.engine.grouping import READ_ROWS
from syncd.engine.line_plan import LinePlan
from syncd.engine.outbox import Outbox
from syncd.engine.plan import JobPlan
from syncd.engine.reading import batches
from syncd.engine.runs import Outcome
from syncd.engine.targets import Writer, in_transaction
from syncd.store import Store, checkpoint_of

RECONCILE = "reconcile"  # checkpoint phase once every batch is in


class Stopped(Exception):
    """Raised out of a backoff sleep, or a remote reconcile, when the run is asked to stop."""


class Completing:
    """What a run does after its last batch (the executor's attributes, declared)."""

    store: Store
    plan: JobPlan
    run_id: int
    source: Source | AsyncSource
    log: structlog.typing.FilteringBoundLogger
    allow_mass_missing: bool
    dry_run: bool
    digest: str | None
    lines: LinePlan | None  # what the run does with its file's lines
    marked: bool = False  # the run left a mark (``unchanged``) when it completed
    _open_target: Callable[[TargetSchema, bool], Writer]  # (schema, dry_run)

    def _complete(self, target: Writer, key: tuple[str, ...]) -> Outcome:
        on_missing = self.plan.config.on_missing
        if self.lines is not None and self.lines.wanted is not None:
            on_missing = "keep"  # no key left the file (``changed_lines`` made sure)
        run = self.store.run(self.run_id)
        missing = 0
        if on_missing != "keep" and self.source.capabilities.complete:
            if run.items_failed:
                self.log.warning("on_missing skipped: some records failed, so absence proves "
                                 "nothing", failed=run.items_failed)
            else:
                # a remote removal cannot be rolled back, nor one on MySQL, whose DDL
                # (reconcile's temporary table) commits the transaction implicitly
                if not in_transaction(target) or self.store.dialect == "mysql":
                    self._probe_missing(key, on_missing)
                if not in_transaction(target):  # sent first, settled below
                    missing = target.reconcile(self._keys(key), on_missing)
                    if isinstance(target, Outbox) and target.interrupted:
                        with self.store.atomic():
                            settle(target)
                        raise Stopped
                self._finish(target)
                with self.store.atomic():  # over the limit: raises, so nothing is removed
                    if in_transaction(target):
                        keys = guard.Counted(self._keys(key))
                        missing = target.reconcile(keys, on_missing)
                        self._guard(on_missing, missing, keys.count)
                    settle(target)
                    save_report(target)
                    # the source's last checkpoint stays (an incremental read starts there)
                    self.store.advance(self.run_id, {"missing": missing},
                                       {**(checkpoint_of(run) or {}), "phase": RECONCILE})
                    self.store.finish(self.run_id, "completed", target_mark=self._mark(target))
                self.log.info("run completed", missing=missing)
                return Outcome("completed")
        self._finish(target)
        with self.store.atomic():
            settle(target)
            save_report(target)
            self.store.finish(self.run_id, "completed", target_mark=self._mark(target))
        self.log.info("run completed")
        return Outcome("completed")

    def _mark(self, target: Writer) -> str | None:
        mark = None if self.dry_run else unchanged.mark(self.store, self.run_id, target,
                                                        self.digest)
        self.marked = mark is not None
        return mark

    def _finish(self, target: Writer) -> None:
        """Make the run's output final (a file renamed into place, a digest sent) before
        the run is recorded completed; what a record target gathered is committed first,
        so a failure here leaves it pending for the next run."""
        if in_transaction(target):
            return
        if not (isinstance(target, Outbox) and target.gathers):
            target.finish()
            return
        with self.store.atomic():
            settle(target)
        try:
            target.finish()
        finally:  # what was sent is recorded at once, even when the rest failed
            with self.store.atomic():
                settle(target)

    def _guard(self, on_missing: str, missing: int, kept: int) -> None:
        if not self.allow_mass_missing:
            guard.check(self.plan.name, on_missing, self.plan.config.max_missing, missing, kept)

    def _probe_missing(self, key: tuple[str, ...], on_missing: str) -> None:
        """Count first, with a dry-run twin of the target, what reconcile would remove."""
        if self.allow_mass_missing:
            return
        probe = self._open_target(self.plan.schema(self.source), True)  # a dry run
        try:
            keys = guard.Counted(self._keys(key))
            missing = probe.reconcile(keys, on_missing)
        finally:
            probe.close()
        self._guard(on_missing, missing, keys.count)

    def _keys(self, key: tuple[str, ...]) -> Iterator[Row]:
        """Every key the source holds now, read again from its start."""
        mapping, constants = self.plan.config.mapping, self.plan.config.constants
        mapped = [k for k in key if k in mapping]
        fields = tuple(mapping[k] for k in mapped)
        for batch in batches(self.source, fields, None, min(self.plan.config.batch_rows,
                                                             READ_ROWS)):
            for row in batch.rows:
                values = dict(zip(mapped, row, strict=True))
                yield tuple(values[k] if k in values else str(constants[k]) for k in key)



def settle(target: Writer) -> None:
    """Record a record target's results (inside the transaction of the counters)."""
    if isinstance(target, Outbox):
        target.settle()


def save_report(target: Writer) -> None:
    if isinstance(target, Outbox):
        target.save_report()
