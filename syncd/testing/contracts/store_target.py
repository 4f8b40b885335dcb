"""The store target contract: batches written inside the batch's transaction.

Subclass it, set ``adapter`` and provide ``target_options`` and ``stored`` (what the
target holds now: one ``(key, available)`` pair per stored record)::

    class TestMyTable(StoreTargetContract):
        adapter = MyTableTarget

        @pytest.fixture
        def target_options(self):
            return {"table": "contract", "key": ["id"]}

        @pytest.fixture
        def stored(self, syncd_store):
            return lambda: [(r[0], bool(r[1])) for r in syncd_store.db.execute_sql(
                "SELECT id, is_available FROM contract").fetchall()]
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd.adapters import Row, Target, TargetSchema, WriteResult
from syncd.store import Store
from syncd.store.sql_session import StoreSqlSession
from syncd.testing.contracts.base import Contract, context
from syncd.testing.contracts.faults import Killed
from syncd.testing.engine import make_engine, run_job

Stored = Callable[[], list[tuple[Any, bool]]]


class Crash(Exception):
    """Ends a transaction before it commits, as a crash would."""


class StoreTargetContract(Contract):
    """Idempotent under a re-run of a batch, exactly once under a replay after a crash,
    reconcile removes only what is missing."""

    count: ClassVar[int] = 6
    batch_rows: ClassVar[int] = 2
    job: ClassVar[str] = "contract"
    columns: ClassVar[tuple[str, ...]] = ("id", "name")

    def row(self, i: int, name: str = "item") -> Row:
        return (str(i), f"{name} {i}")

    @pytest.fixture
    def target_options(self) -> Mapping[str, Any]:
        raise NotImplementedError("provide a `target_options` fixture: the target's options")

    @pytest.fixture
    def stored(self) -> Stored:
        raise NotImplementedError("provide a `stored` fixture: () -> [(key, available), …]")

    @pytest.fixture
    def open_target(self, syncd_store: Store, tmp_path: Path,
                    target_options: Mapping[str, Any]) -> Callable[..., Target]:
        """``open_target(dry_run=False)``: the target opened as a run opens it."""
        def make(dry_run: bool = False) -> Target:
            options = self.adapter.Options.model_validate(dict(target_options))
            key = tuple(getattr(options, "key", ()) or ()) or self.columns[:1]
            schema = TargetSchema(job=self.job, columns=self.columns, key=key, constants={},
                                  source_type="memory", source_identifier="contract")
            sql = StoreSqlSession(syncd_store.db, syncd_store.dialect, self.job)
            target = self.adapter(options)
            target.open(schema, context(tmp_path, dry_run=dry_run,
                                        sql=sql if target.capabilities.store else None))
            return target

        return make

    def rows(self, count: int | None = None, name: str = "item") -> list[Row]:
        return [self.row(i, name) for i in range(self.count if count is None else count)]

    def write(self, store: Store, target: Target, rows: list[Row]) -> WriteResult:
        with store.atomic():
            return target.write(rows, [f"record {r[0]}" for r in rows])

    def assert_holds(self, stored: Stored, keys: list[Any], what: str,
                     unavailable: list[Any] = ()) -> None:  # type: ignore[assignment]
        held = Counter(str(k) for k, _ in stored())
        twice = sorted(k for k, n in held.items() if n > 1)
        assert not twice, f"{what}: stored twice: {twice}"
        assert sorted(held) == sorted(str(k) for k in keys), f"{what}: holds {sorted(held)}"
        gone = sorted(str(k) for k, available in stored() if not available)
        assert gone == sorted(str(k) for k in unavailable), f"{what}: unavailable: {gone}"

    # -- the tests ----------------------------------------------------------------

    def test_it_is_a_store_target(self) -> None:
        assert issubclass(self.adapter, Target) and self.adapter.capabilities.store, (
            "a store target declares TargetCapabilities(store=True); other targets are "
            "RecordTargets (RecordTargetContract)")

    def test_writing_the_same_batch_again_changes_nothing(
            self, open_target: Any, syncd_store: Store, stored: Stored) -> None:
        target = open_target()
        first = self.write(syncd_store, target, self.rows())
        again = self.write(syncd_store, target, self.rows())
        target.close()
        assert (first.inserted, first.updated, first.unchanged) == (self.count, 0, 0), first
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, self.count), again
        self.assert_holds(stored, [r[0] for r in self.rows()], "after a batch written twice")

    def test_a_prepared_batch_is_written_as_the_plain_one(
            self, open_target: Any, syncd_store: Store, stored: Stored) -> None:
        """What ``preparer`` makes (in a reader process: it is pickled there and back)
        is written as the plain rows are, and hashed alike: the plain batch written
        after it is all unchanged."""
        target = open_target()
        prepare = target.preparer()
        if prepare is None:
            target.close()
            pytest.skip("no preparer: every batch is written as read")
        rows = self.rows()
        prepared, items = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(prepare))(
            rows, [f"record {r[0]}" for r in rows])))
        assert sorted(zip(items, prepared, strict=True)) == sorted(
            (f"record {r[0]}", r) for r in rows), "the preparer changed or lost rows"
        with syncd_store.atomic():
            first = target.write(prepared, items)
        again = self.write(syncd_store, target, rows)
        target.close()
        assert (first.inserted, first.updated, first.unchanged) == (self.count, 0, 0), first
        assert (again.inserted, again.updated, again.unchanged) == (0, 0, self.count), (
            f"the plain batch after the prepared one counted {again}: hashed differently")
        self.assert_holds(stored, [r[0] for r in rows], "after a prepared batch")

    def test_an_empty_target_counts_a_key_written_again_as_not_inserted(
            self, open_target: Any, syncd_store: Store) -> None:
        """``empty``: true of a target that holds nothing, and then a key written before
        in the run is counted updated or unchanged, never inserted: that is how a large
        first load finds a key repeated across its batches."""
        target = open_target()
        if not target.empty():
            target.close()
            pytest.skip("never says it is empty: every key of a run is indexed as read")
        rows = self.rows()
        half = len(rows) // 2
        first = self.write(syncd_store, target, rows[:half])
        batch = [self.row(0, "renamed"), rows[1], *rows[half:]]
        items = [f"record {r[0]}" for r in batch]
        prepare = target.preparer()
        if prepare is not None:  # as a reader process hands it over
            batch, items = prepare(batch, items)
        with syncd_store.atomic():
            again = target.write(batch, items)
        target.close()
        assert first.inserted == half, first
        assert again.inserted == len(rows) - half, (
            f"a key written before counted as inserted: {again}")
        assert (again.updated, again.unchanged) == (1, 1), again
        reopened = open_target()
        assert not reopened.empty(), "a target holding records says it is empty"
        reopened.close()

    def test_a_revision_changes_with_every_write_and_only_then(
            self, open_target: Any, syncd_store: Store) -> None:
        """``revision``: a run finding the one its job's last run left reads nothing, so
        a write of new, changed or removed records must change it, and a read or a
        batch of unchanged records must not (or no run would skip its read)."""
        target = open_target()
        empty = target.revision()
        if empty is None:
            target.close()
            pytest.skip("no revision: every run reads its source")
        revisions = [empty]
        for rows in (self.rows(), self.rows(name="renamed")):
            self.write(syncd_store, target, rows)
            revisions.append(target.revision())
        self.write(syncd_store, target, self.rows(name="renamed"))  # all unchanged
        unchanged, written = target.revision(), revisions[-1]
        if self.adapter.capabilities.delete:
            with syncd_store.atomic():
                target.reconcile(iter([r[:1] for r in self.rows()[1:]]), "delete")
            revisions.append(target.revision())
        target.close()
        assert len({repr(r) for r in revisions}) == len(revisions), (
            f"a write left the revision as it was: {revisions}")
        assert unchanged == written, "a batch of unchanged records changed the revision"
        reopened = open_target()
        assert reopened.revision() == revisions[-1], "the revision depends on the open target"
        reopened.close()

    @pytest.mark.parametrize("change", ["new", "changed"])
    def test_a_batch_replayed_after_a_crash_is_written_exactly_once(
            self, change: str, open_target: Any, syncd_store: Store, stored: Stored) -> None:
        """Written, rolled back (the process died before the commit), written again:
        the same counts and records as if the first attempt never happened."""
        target = open_target()
        if change == "changed":
            self.write(syncd_store, target, self.rows())
        rows = self.rows(name="renamed" if change == "changed" else "item")
        with pytest.raises(Crash), syncd_store.atomic():
            first = target.write(rows, [f"record {r[0]}" for r in rows])
            raise Crash
        replay = self.write(syncd_store, target, rows)
        target.close()
        counts = (replay.inserted, replay.updated, replay.unchanged)
        assert counts == (first.inserted, first.updated, first.unchanged), (
            f"the replay counted {replay}, the attempt rolled back {first}: the target "
            "wrote outside the batch's transaction")
        expected = (0, self.count, 0) if change == "changed" else (self.count, 0, 0)
        assert counts == expected, replay
        self.assert_holds(stored, [r[0] for r in rows], "after a replay")

    @pytest.mark.parametrize("on_missing", ["delete", "mark_unavailable"])
    def test_reconcile_removes_only_what_is_missing(
            self, on_missing: str, open_target: Any, syncd_store: Store,
            stored: Stored) -> None:
        caps = self.adapter.capabilities
        if not (caps.delete if on_missing == "delete" else caps.mark_unavailable):
            pytest.skip(f"the target cannot {on_missing}")
        target = open_target()
        self.write(syncd_store, target, self.rows())
        seen = [r[:1] for r in self.rows()[::2]]
        gone = [r[0] for r in self.rows()[1::2]]
        with syncd_store.atomic():
            missing = target.reconcile(iter(seen), on_missing)
        target.close()
        assert missing == len(gone), f"reconcile said {missing}, {len(gone)} were missing"
        if on_missing == "delete":
            self.assert_holds(stored, [k for (k,) in seen], "after reconcile (delete)")
        else:
            self.assert_holds(stored, [r[0] for r in self.rows()], "after reconcile", gone)

    def test_a_dry_run_writes_nothing(self, open_target: Any, syncd_store: Store,
                                      stored: Stored) -> None:
        target = open_target(dry_run=True)
        result = self.write(syncd_store, target, self.rows())
        target.close()
        assert result.inserted == self.count, result
        assert stored() == [], "a dry run wrote records"

    @pytest.mark.parametrize("at", [1, 2])
    def test_a_run_killed_in_a_batch_resumes_to_each_record_once(
            self, at: int, syncd_store: Store, tmp_path: Path,
            target_options: Mapping[str, Any], stored: Stored) -> None:
        """Through the engine: dies in the middle of batch ``at``'s transaction."""
        writes = [0]
        base = self.adapter

        def write(self: Any, rows: Any, items: Any) -> WriteResult:
            result = base.write(self, rows, items)
            writes[0] += 1
            if writes[0] == at + 1:
                raise Killed(f"killed in batch {at + 1}")
            return result

        dying = type(base.__name__, (base,), {"write": write, "__module__": base.__module__})
        records = [dict(zip(self.columns, row, strict=True)) for row in self.rows()]
        job = {"source": {"type": "memory", "records": records},
               "target": {"type": base.name, **target_options},
               "mapping": {c: c for c in self.columns}, "batch_rows": self.batch_rows}
        state = tmp_path / "state"
        with pytest.raises(Killed):
            run_job(make_engine(syncd_store, state, {self.job: job}, adapters=[dying]),
                    self.job)
        run, outcome = run_job(make_engine(syncd_store, state, {self.job: job},
                                           adapters=[base]), self.job)
        assert outcome.status == "completed", outcome.error
        counters = syncd_store.counters(run)
        assert (counters["processed"], counters["inserted"]) == (self.count, self.count), (
            f"resumed after a kill, the run counted {counters}")
        self.assert_holds(stored, [r[0] for r in self.rows()], "after a kill and a resume")
        run, _ = run_job(make_engine(syncd_store, state, {self.job: job}, adapters=[base]),
                         self.job)
        assert syncd_store.counters(run)["unchanged"] == self.count
