"""The record target contract: run through the real engine, its id map and its faults.

Subclass it, set ``adapter`` and provide ``target_options`` (the options of a job's
target, without ``type``). By default the remote is the ``memory_remote`` fixture and
the adapter must speak its REST dialect; a target with another remote overrides
``remote_keys`` (and the fault fixtures, or returns None from them to skip)::

    class TestMyTarget(RecordTargetContract):
        adapter = MyTarget

        @pytest.fixture
        def target_options(self, memory_remote):
            return {"url": memory_remote.url}

Records are ``{"id": "0", "name": "item 0"}`` … keyed by ``id``; override ``record``
when the target needs other fields. A target whose options name a remote
(``remote = "NAME"``) overrides ``target_remotes``: ``{"NAME": {"base_url": …, "auth":
{…}}}``, the ``[remotes.NAME]`` sections as a config file holds them (validated as one,
so secrets are ``{env = …}`` or ``{file = …}``); default: none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from syncd.engine import Engine
from syncd.store import Store
from syncd.store.models import IdMap, SyncError
from syncd.testing.contracts.base import Contract, check_item_error
from syncd.testing.contracts.faults import Faults, Killed, instrument
from syncd.testing.engine import make_engine, run_job
from syncd.testing.remote import MemoryRemote

Inject = Callable[..., None]
#: refusals to provoke, and the error each must be stored as: (error_type, retryable)
REFUSALS = {"rejected": ("target", False), "auth": ("auth", False),
            "conflict": ("conflict", False)}
STATUS = {"rejected": 400, "auth": 401, "conflict": 409}


class RecordTargetContract(Contract):
    """First run creates once, unchanged sends nothing, retries and kills double nothing,
    refusals are item errors of their type."""

    #: records per run, and per batch (several batches, so that kills fall between them)
    count: ClassVar[int] = 7
    batch_rows: ClassVar[int] = 3
    job: ClassVar[str] = "contract"

    def record(self, i: int) -> dict[str, Any]:
        return {"id": str(i), "name": f"item {i}"}

    # -- fixtures an author provides or overrides --------------------------------

    @pytest.fixture
    def target_options(self) -> Mapping[str, Any]:
        raise NotImplementedError("provide a `target_options` fixture: the target's options")

    @pytest.fixture
    def target_remotes(self) -> Mapping[str, Mapping[str, Any]]:
        """``[remotes.NAME]`` sections (as dicts) of the engine's config."""
        return {}

    @pytest.fixture
    def remote_keys(self, memory_remote: MemoryRemote) -> Callable[[], list[str]]:
        """The local key of every record on the remote, once per remote record."""
        return lambda: [str(item.get("key")) for item in memory_remote.items.values()]

    @pytest.fixture
    def fail_next(self, memory_remote: MemoryRemote) -> Inject | None:
        """``fail_next(n)``: the next n requests fail transiently (a 503)."""
        return lambda count: memory_remote.fail_next(count, status=503)

    @pytest.fixture
    def lose_next_answer(self, memory_remote: MemoryRemote) -> Inject | None:
        """The next create is carried out but its answer never arrives."""
        return lambda: memory_remote.die_after_create_next(1)

    @pytest.fixture
    def refuse_next(self, memory_remote: MemoryRemote) -> Callable[[str], None] | None:
        """``refuse_next(kind)``: the next request is refused (a kind of ``REFUSALS``)."""
        return lambda kind: memory_remote.fail_next(1, status=STATUS[kind])

    # -- helpers ------------------------------------------------------------------

    @pytest.fixture
    def faults(self) -> Faults:
        return Faults()

    @pytest.fixture
    def sync(self, syncd_store: Store, tmp_path: Path, target_options: Mapping[str, Any],
             faults: Faults, target_remotes: Mapping[str, Mapping[str, Any]]
             ) -> Callable[..., Any]:
        """``sync(records, **job)``: one run of a fresh engine (as a restarted daemon)."""
        target = instrument(self.adapter, faults)

        def run(records: list[dict[str, Any]], dry_run: bool = False, **job: Any) -> Any:
            spec = {"source": {"type": "memory", "records": records},
                    "target": {"type": self.adapter.name, **target_options},
                    "mapping": {name: name for name in records[0]} if records else {"id": "id"},
                    "batch_rows": self.batch_rows,
                    "retry": {"attempts": 2, "initial_s": 0.01, "max_s": 0.02}, **job}
            engine: Engine = make_engine(syncd_store, tmp_path / "state", {self.job: spec},
                                         adapters=[target], remotes=target_remotes)
            return run_job(engine, self.job, dry_run=dry_run)

        return run

    def records(self, count: int | None = None) -> list[dict[str, Any]]:
        return [self.record(i) for i in range(self.count if count is None else count)]

    def keys(self, count: int | None = None) -> list[str]:
        return sorted(str(r["id"]) for r in self.records(count))

    def assert_each_once(self, remote_keys: Callable[[], list[str]], count: int | None = None,
                         what: str = "") -> None:
        held = Counter(remote_keys())
        twice = sorted(k for k, n in held.items() if n > 1)
        assert not twice, f"{what}: records created twice on the remote: {twice}"
        assert sorted(held) == self.keys(count), f"{what}: the remote holds {sorted(held)}"

    def id_map(self) -> dict[str, str]:
        return {r.local_key: r.state for r in IdMap.select().where(IdMap.job == self.job)}

    # -- the tests ----------------------------------------------------------------

    def test_first_run_creates_each_record_once_and_a_rerun_sends_nothing(
            self, sync: Any, syncd_store: Store, remote_keys: Any, faults: Faults) -> None:
        run, outcome = sync(self.records())
        assert outcome.status == "completed", outcome.error
        assert syncd_store.counters(run)["inserted"] == self.count, syncd_store.counters(run)
        self.assert_each_once(remote_keys, what="after the first run")
        assert set(self.id_map().values()) == {"synced"}

        faults.applied.clear()
        run, outcome = sync(self.records())
        assert syncd_store.counters(run)["unchanged"] == self.count, syncd_store.counters(run)
        assert faults.applied == [] and faults.found == [], "an unchanged record was sent"
        self.assert_each_once(remote_keys, what="after an unchanged run")

    def test_a_changed_record_is_updated_in_place(self, sync: Any, syncd_store: Store,
                                                  remote_keys: Any, faults: Faults) -> None:
        if not self.adapter.capabilities.update:
            pytest.skip("capabilities.update is False")
        sync(self.records())
        changed = self.records()
        changed[1] = {**changed[1], "name": "renamed"}
        faults.applied.clear()
        run, outcome = sync(changed)
        assert outcome.status == "completed", outcome.error
        assert syncd_store.counters(run)["updated"] == 1, syncd_store.counters(run)
        assert faults.applied == [("update", str(changed[1]["id"]))]
        self.assert_each_once(remote_keys, what="after an update")

    def test_a_removed_record_is_deleted_and_only_it(self, sync: Any, syncd_store: Store,
                                                     remote_keys: Any) -> None:
        if not self.adapter.capabilities.delete:
            pytest.skip("capabilities.delete is False")
        sync(self.records())
        run, outcome = sync(self.records(self.count - 1), on_missing="delete")
        assert outcome.status == "completed", outcome.error
        assert syncd_store.counters(run)["missing"] == 1, syncd_store.counters(run)
        self.assert_each_once(remote_keys, self.count - 1, what="after a removal")

    def test_a_dry_run_sends_nothing(self, sync: Any, syncd_store: Store, remote_keys: Any,
                                     faults: Faults) -> None:
        run, outcome = sync(self.records(), dry_run=True)
        assert outcome.status == "completed", outcome.error
        assert syncd_store.counters(run)["inserted"] == self.count
        assert faults.applied == [] and remote_keys() == [], "a dry run sent something"

    def test_transient_failures_create_nothing_twice(
            self, sync: Any, syncd_store: Store, remote_keys: Any, fail_next: Any) -> None:
        if fail_next is None:
            pytest.skip("no fail_next fixture")
        fail_next(2)
        run, outcome = sync(self.records())
        assert outcome.status == "completed", outcome.error
        for error in syncd_store.errors_of(run.id):
            assert error.is_retryable, f"a transient failure stored as final: {error}"
        sync(self.records())  # what failed is sent again by the next run
        self.assert_each_once(remote_keys, what="after transient failures")

    @pytest.mark.parametrize("where", ["remote", "adapter"])
    def test_a_lost_answer_creates_nothing_twice(
            self, where: str, sync: Any, syncd_store: Store, remote_keys: Any,
            lose_next_answer: Any, faults: Faults) -> None:
        """The remote created the record; the answer is lost; the next attempt must not
        create it again (``find`` it, or send ``change.idempotency_key``)."""
        if where == "remote":
            if lose_next_answer is None:
                pytest.skip("no lose_next_answer fixture")
            lose_next_answer()
        else:
            faults.lose_answer = {2}
        _run, outcome = sync(self.records())
        assert outcome.status == "completed", outcome.error
        sync(self.records())
        self.assert_each_once(remote_keys, what="after a lost answer (declare "
                              "capabilities.lookup and implement find(), or send "
                              "change.idempotency_key)")
        assert set(self.id_map().values()) == {"synced"}

    @pytest.mark.parametrize("at", [1, 5])
    def test_a_run_killed_between_intent_and_answer_never_doubles_a_record(
            self, at: int, sync: Any, syncd_store: Store, remote_keys: Any,
            faults: Faults) -> None:
        """Dies right after the remote acted on create ``at``, before the id map heard."""
        faults.kill_after = {at}
        with pytest.raises(Killed):
            sync(self.records())
        _run, outcome = sync(self.records())  # the restarted daemon resumes the run
        assert outcome.status == "completed", outcome.error
        self.assert_each_once(remote_keys, what=f"after a kill after create {at}")
        assert set(self.id_map().values()) == {"synced"}

    @pytest.mark.parametrize("kind", sorted(REFUSALS))
    def test_a_refused_record_is_an_item_error_of_its_type(
            self, kind: str, sync: Any, syncd_store: Store, remote_keys: Any,
            refuse_next: Any) -> None:
        if refuse_next is None:
            pytest.skip("no refuse_next fixture")
        refuse_next(kind)
        run, outcome = sync(self.records(1))
        assert outcome.status == "completed", f"one refused record failed the run: {outcome}"
        [error] = SyncError.select().where(SyncError.sync_run_id == run.id)
        check_item_error(_item(error), "a refused record")
        assert (error.error_type, bool(error.is_retryable)) == REFUSALS[kind], (
            f"a {kind} refusal was stored as {error.error_type} "
            f"(retryable={error.is_retryable}); raise the matching syncd.errors class")
        assert syncd_store.counters(run)["failed"] == 1
        sync(self.records(1))
        self.assert_each_once(remote_keys, 1, what=f"after a {kind} refusal")


def _item(row: SyncError) -> Any:
    from syncd.adapters import ErrorType, ItemError

    kind = cast(ErrorType, row.error_type)  # stored as one of ERROR_TYPES
    return ItemError(kind, row.error_code, row.error_message, row.item_identifier,
                     bool(row.is_retryable))
