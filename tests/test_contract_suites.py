"""The contract suites themselves: they fail an adapter that breaks the contract.

Each test runs a small test module in a pytest of its own (``pytester``): a target
that neither sends the idempotency key nor can find what it created, a source whose
checkpoints skip a record.
"""

from __future__ import annotations

import pytest

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
