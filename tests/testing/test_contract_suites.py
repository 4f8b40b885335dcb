"""The contract suites themselves: they fail an adapter that breaks the contract.

Each test runs a small test module in a pytest of its own (``pytester``): a target
that neither sends the idempotency key nor can find what it created, a source whose
checkpoints skip a record. And a synchronous target with a remote of its own passes,
through the fixtures README says such a target overrides.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from syncd.adapters import Change, Options, RecordTarget, Result, TargetCapabilities
from syncd.errors import AuthError, ConflictError, RemoteRejected
from syncd.testing import RecordTargetContract
from tests.conftest import PG_ADMIN, _server_up

pytest_plugins = ["pytester"]

NAIVE_TARGET = '''
import pytest
from syncd.adapters import Result, TargetCapabilities
from syncd.testing import RecordTargetContract
from tests.restish import RestishTarget, _id


class NaiveTarget(RestishTarget):
    """Sends no idempotency key and cannot look a record up."""

    name = "naive"
    capabilities = TargetCapabilities(update=True, delete=True, lookup=False)

    async def apply(self, change):
        if change.kind != "create":
            return await super().apply(change)
        answer = await self.client.request("POST", "/items",
                                           json_body={**change.record, "key": change.key})
        return Result("created", _id(answer.json()))


class TestNaive(RecordTargetContract):
    adapter = NaiveTarget

    @pytest.fixture
    def target_options(self, memory_remote):
        return {"url": memory_remote.url}
'''

SKIPPING_SOURCE = '''
import pytest
from syncd.engine.memory import MemorySource
from syncd.testing import SourceContract


class SkippingSource(MemorySource):
    """Its checkpoints point one record too far."""

    name = "skipping"

    def read(self, fields, checkpoint, batch_rows):
        for batch in super().read(fields, checkpoint, batch_rows):
            batch.checkpoint = {"index": batch.checkpoint["index"] + 1}
            yield batch


class TestSkipping(SourceContract):
    adapter = SkippingSource

    @pytest.fixture
    def make_source(self):
        records = [{"id": str(i), "name": f"n{i}"} for i in range(7)]
        return lambda: SkippingSource(SkippingSource.Options(records=records))

    @pytest.fixture
    def source_fields(self):
        return ["id", "name"]
'''


QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")


def outcomes(recorder: pytest.HookRecorder) -> dict[str, str]:
    """Test name (without the class) -> passed / failed / skipped."""
    seen = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            seen[report.nodeid.split("::")[-1]] = report.outcome
    return seen


def test_a_target_that_can_create_twice_fails_the_lost_answer_and_kill_tests(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_naive=NAIVE_TARGET)
    result = outcomes(pytester.inline_run(*QUIET))
    assert result["test_first_run_creates_each_record_once_and_a_rerun_sends_nothing"] == \
        "passed"
    for name in ("test_a_lost_answer_creates_nothing_twice[remote]",
                 "test_a_lost_answer_creates_nothing_twice[adapter]",
                 "test_a_run_killed_between_intent_and_answer_never_doubles_a_record[1]"):
        assert result[name] == "failed", name


def test_a_source_whose_checkpoints_skip_a_record_fails_the_resume_tests(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skipping=SKIPPING_SOURCE)
    result = outcomes(pytester.inline_run(*QUIET))
    assert result["test_a_full_read_yields_records_and_json_checkpoints"] == "passed"
    assert result["test_reopening_at_every_checkpoint_yields_each_record_exactly_once[good]"] \
        == "failed"
    assert result["test_a_run_resumed_after_every_batch_reads_each_record_once[good]"] == \
        "failed"


# -- a target with a remote of its own overrides the remote's fixtures ----------------------


class DictTarget(RecordTarget):
    """A synchronous target whose "remote" is a dict; it honours idempotency keys."""

    name = "dict"
    capabilities = TargetCapabilities(update=True, delete=True)
    remote: ClassVar[dict[str, dict[str, Any]]] = {}
    seen: ClassVar[dict[str, str]] = {}  # idempotency key -> remote id
    refuse: ClassVar[list[str]] = []

    class Options(Options):
        key: list[str] = ["id"]

    def apply(self, change: Change) -> Result:
        if self.refuse:
            raise {"rejected": RemoteRejected, "auth": AuthError,
                   "conflict": ConflictError}[self.refuse.pop()]("refused (test)")
        if change.kind == "create":
            if change.idempotency_key not in self.seen:
                self.seen[change.idempotency_key] = f"d{len(self.seen)}"
                self.remote[self.seen[change.idempotency_key]] = {"key": change.key}
            return Result("created", self.seen[change.idempotency_key])
        assert change.remote_id is not None
        if change.kind == "delete":
            del self.remote[change.remote_id]
            return Result("deleted", change.remote_id)
        self.remote[change.remote_id] = {"key": change.key, **change.record}
        return Result("updated", change.remote_id)


class TestDictTarget(RecordTargetContract):
    adapter = DictTarget

    @pytest.fixture(autouse=True)
    def empty(self) -> None:
        DictTarget.remote.clear()
        DictTarget.seen.clear()
        DictTarget.refuse.clear()

    @pytest.fixture
    def target_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def remote_keys(self) -> Any:
        return lambda: [item["key"] for item in DictTarget.remote.values()]

    @pytest.fixture
    def fail_next(self) -> None:
        return None  # nothing transient about a dict

    @pytest.fixture
    def lose_next_answer(self) -> None:
        return None  # the "adapter" variant of the test loses one all the same

    @pytest.fixture
    def refuse_next(self) -> Any:
        return DictTarget.refuse.append


# -- the plugin's --syncd-database option -------------------------------------------------


@pytest.mark.postgres
def test_syncd_database_gives_each_test_a_fresh_database_on_the_server(
        pytester: pytest.Pytester) -> None:
    reason = _server_up("postgres")
    if reason:
        pytest.skip(reason)
    pytester.makepyfile(test_db='''
        def test_on_postgres(syncd_store):
            assert syncd_store.dialect == "postgres"
            assert syncd_store.db.database.startswith("syncd_test_")
            syncd_store.db.execute_sql("CREATE TABLE mine (x INTEGER)")

        def test_again_fresh(syncd_store):
            assert not syncd_store.db.table_exists("mine")
    ''')
    result = pytester.inline_run(*QUIET, f"--syncd-database={PG_ADMIN}")
    result.assertoutcome(passed=2)
