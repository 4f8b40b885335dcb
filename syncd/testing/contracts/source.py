"""The source contract: what the engine relies on when it reads, stops and resumes.

Subclass it and provide ``make_source`` (a fresh source over data with at least three
records, as a new run would open it) and ``source_fields``; ``make_bad_source`` (data
with records that cannot be read) is optional::

    class TestMySource(SourceContract):
        adapter = MySource

        @pytest.fixture
        def make_source(self, tmp_path):
            path = tmp_path / "data.txt"
            path.write_text("...")
            return lambda: MySource(MySource.Options(path=str(path)))

        @pytest.fixture
        def source_fields(self):
            return ["id", "name"]

A source that reaches a remote system by name (``ctx.client(NAME)``, or an option
``remote = "NAME"``) overrides ``source_remotes``: ``{"NAME": {"base_url": …, "auth":
{…}}}``, the ``[remotes.NAME]`` sections as a config file holds them (validated as one,
so secrets are ``{env = …}`` or ``{file = …}``); the suite's direct reads and its engine
runs get them. Default: none.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd.adapters import AsyncSource, Batch, Checkpoint, Source
from syncd.engine.memory import MemoryTarget
from syncd.engine.reading import batches
from syncd.remote.http import HttpFactory
from syncd.testing.contracts.base import Contract, check_item_error, context
from syncd.testing.engine import make_engine, make_http, run_job

AnySource = Source | AsyncSource
MakeSource = Callable[[], AnySource]


def read_all(source: AnySource, fields: Sequence[str], checkpoint: Checkpoint | None,
             batch_rows: int, tmp_path: Path, limit: int | None = None,
             http: HttpFactory | None = None) -> list[Batch]:
    """The batches of one read from ``checkpoint`` (at most ``limit`` of them); ``http``
    makes the clients of the run's context (``ctx.client(NAME)``)."""
    source.open(context(tmp_path, http=http))
    out: list[Batch] = []
    stream = batches(source, fields, checkpoint, batch_rows)
    try:
        for batch in stream:
            out.append(batch)
            if limit is not None and len(out) >= limit:
                break
    finally:
        stream.close()  # type: ignore[attr-defined]  # a generator, typed as Iterator
    return out


def records(read: list[Batch]) -> list[tuple[str, Any]]:
    """Every record a read yielded, rows and errors, named by item, in order."""
    out: list[tuple[str, Any]] = []
    for batch in read:
        out += [(item, tuple(row)) for item, row in zip(batch.items, batch.rows, strict=True)]
        out += [(error.item, ("error", error.type, error.code)) for error in batch.errors]
    return out


def roundtrip(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint as the store gives it back (it is kept as JSON)."""
    try:
        return json.loads(json.dumps(checkpoint))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"checkpoint {checkpoint!r} is not JSON-serialisable: {exc}"
                             ) from None


class SourceContract(Contract):
    """Reopening at every checkpoint yields each record exactly once; checkpoints are
    JSON; errors are item errors; ``header()`` and ``fingerprint()`` keep their word."""

    #: rows per batch in these tests: small, so that there are many checkpoints
    batch_rows: ClassVar[int] = 2

    @pytest.fixture
    def make_source(self) -> MakeSource:
        raise NotImplementedError("provide a `make_source` fixture: () -> a fresh source")

    @pytest.fixture
    def source_fields(self) -> Sequence[str]:
        raise NotImplementedError("provide a `source_fields` fixture: the fields to read")

    @pytest.fixture
    def make_bad_source(self) -> MakeSource | None:
        """A source whose data holds records that cannot be read (None: not tested)."""
        return None

    @pytest.fixture
    def source_remotes(self) -> Mapping[str, Mapping[str, Any]]:
        """``[remotes.NAME]`` sections (as dicts) the source reaches by ``ctx.client(NAME)``
        or names in ``remote = "NAME"``; secrets as ``{env = …}`` or ``{file = …}``."""
        return {}

    @pytest.fixture
    def source_http(self, source_remotes: Mapping[str, Mapping[str, Any]],
                    tmp_path: Path) -> HttpFactory:
        """The clients a direct read's context makes: ``source_remotes``, validated."""
        return make_http(source_remotes, tmp_path)

    @pytest.fixture(params=["good", "bad"])
    def sources(self, request: pytest.FixtureRequest, make_source: MakeSource,
                make_bad_source: MakeSource | None) -> MakeSource:
        if request.param == "good":
            return make_source
        if make_bad_source is None:
            pytest.skip("no make_bad_source fixture: data with unreadable records")
        return make_bad_source

    # -- the tests ----------------------------------------------------------------

    def test_it_is_the_adapter_declared(self, make_source: MakeSource) -> None:
        source = make_source()
        assert isinstance(source, self.adapter), f"make_source made {source!r}"
        assert isinstance(source.identifier, str) and source.identifier
        assert source.identifier == make_source().identifier, "the identifier is not stable"

    def test_a_full_read_yields_records_and_json_checkpoints(
            self, make_source: MakeSource, source_fields: Sequence[str], tmp_path: Path,
            source_http: HttpFactory) -> None:
        read = read_all(make_source(), source_fields, None, self.batch_rows, tmp_path,
                        http=source_http)
        rows = [row for batch in read for row in batch.rows]
        assert len(rows) >= 3, "make_source should give at least three records"
        for batch in read:
            assert len(batch.rows) == len(batch.items), "one item name per row"
            assert all(len(row) == len(source_fields) for row in batch.rows), (
                "a row has one value per requested field")
            assert roundtrip(batch.checkpoint) == batch.checkpoint, (
                f"checkpoint {batch.checkpoint!r} changes through JSON")

    def test_a_portable_source_reads_alike_once_pickled(
            self, make_source: MakeSource, source_fields: Sequence[str], tmp_path: Path,
            source_http: HttpFactory) -> None:
        """A source declaring ``portable`` is opened, pickled to a reader process and
        read there: the copy must read what the source itself reads."""
        if not self.adapter.capabilities.portable:
            pytest.skip("not portable: read in the run's thread only")
        source = make_source()
        source.open(context(tmp_path, http=source_http))
        copy = pickle.loads(pickle.dumps(source))
        direct = read_all(make_source(), source_fields, None, self.batch_rows, tmp_path,
                          http=source_http)
        assert records(list(batches(copy, source_fields, None, self.batch_rows))) == \
            records(direct), "read after pickling, the source yields other records"

    def test_reopening_at_every_checkpoint_yields_each_record_exactly_once(
            self, sources: MakeSource, source_fields: Sequence[str], tmp_path: Path,
            source_http: HttpFactory) -> None:
        """As a run stopped after any batch and resumed by a new process would read."""
        full = read_all(sources(), source_fields, None, self.batch_rows, tmp_path,
                        http=source_http)
        for done in range(1, len(full) + 1):
            checkpoint = roundtrip(full[done - 1].checkpoint)
            rest = read_all(sources(), source_fields, checkpoint, self.batch_rows, tmp_path,
                            http=source_http)
            assert records(full[:done]) + records(rest) == records(full), (
                f"resumed at checkpoint {checkpoint!r} (after batch {done} of {len(full)}), "
                "the records read differ from one uninterrupted read")

    def test_a_run_resumed_after_every_batch_reads_each_record_once(
            self, sources: MakeSource, source_fields: Sequence[str], tmp_path: Path,
            source_http: HttpFactory) -> None:
        """Stopped after every single batch, each time by a fresh source."""
        full = records(read_all(sources(), source_fields, None, self.batch_rows, tmp_path,
                                http=source_http))
        seen: list[tuple[str, Any]] = []
        checkpoint: Checkpoint | None = None
        for _ in range(len(full) + 2):
            first = read_all(sources(), source_fields, checkpoint, self.batch_rows, tmp_path,
                             limit=1, http=source_http)
            if not first:
                break
            [batch] = first
            seen += records([batch])
            if checkpoint is not None and roundtrip(batch.checkpoint) == checkpoint:
                break  # the end: nothing after the last checkpoint
            checkpoint = roundtrip(batch.checkpoint)
        assert seen == full, "reading one batch per run does not give each record once"

    def test_unreadable_records_are_item_errors_not_exceptions(
            self, make_bad_source: MakeSource | None, source_fields: Sequence[str],
            tmp_path: Path, source_http: HttpFactory) -> None:
        if make_bad_source is None:
            pytest.skip("no make_bad_source fixture: data with unreadable records")
        read = read_all(make_bad_source(), source_fields, None, self.batch_rows, tmp_path,
                        http=source_http)
        errors = [error for batch in read for error in batch.errors]
        assert errors, "make_bad_source's data gave no ItemError"
        for error in errors:
            check_item_error(error, "a bad record")
            assert error.item, f"{error!r} does not name its record (item)"

    def test_header_is_answered_when_declared(self, make_source: MakeSource,
                                              source_fields: Sequence[str]) -> None:
        source = make_source()
        if not source.capabilities.header:
            pytest.skip("capabilities.header is not declared")
        header = source.header()
        assert isinstance(header, list) and all(isinstance(h, str) for h in header), (
            f"header() gave {header!r}, not a list of names")
        missing = [f for f in source_fields if f not in header]
        assert not missing, f"header() {header!r} does not name the fields {missing!r}"

    def test_the_fingerprint_is_stable_while_the_data_is_unchanged(
            self, make_source: MakeSource, source_fields: Sequence[str], tmp_path: Path,
            source_http: HttpFactory) -> None:
        first = make_source().fingerprint()
        assert first is None or roundtrip(first) == first
        assert make_source().fingerprint() == first, "two fingerprints of unchanged data differ"
        source = make_source()
        read_all(source, source_fields, None, self.batch_rows, tmp_path, http=source_http)
        if first is not None:
            assert source.unchanged_since(first), "unchanged_since() is False after a read " \
                "of unchanged data: every run would fail as 'changed while read'"

    def test_runs_through_the_engine_count_every_record_once(
            self, sources: MakeSource, source_fields: Sequence[str], syncd_store: Any,
            tmp_path: Path, source_http: HttpFactory,
            source_remotes: Mapping[str, Mapping[str, Any]]) -> None:
        """Into the memory target, keyed by the whole record: then nothing is new."""
        source = sources()
        mapping = {f"f{i}": field for i, field in enumerate(source_fields)}
        full = records(read_all(sources(), source_fields, None, self.batch_rows, tmp_path,
                                http=source_http))
        adapter = type(source)
        table = f"contract-{uuid.uuid4().hex}"
        job = {"source": {"type": adapter.name, **_options(source)},
               "target": {"type": "memory", "table": table, "key": ["record"]},
               "mapping": {"record": "<whole record>", **mapping},
               "batch_rows": self.batch_rows}
        engine = make_engine(syncd_store, tmp_path / "state", {"j": job}, adapters=[adapter],
                             remotes=source_remotes)
        run, outcome = run_job(engine, "j", identifier=source.identifier_override)
        assert outcome.status == "completed", outcome.error
        counters = syncd_store.counters(run)
        assert counters["processed"] == len(full), (counters, len(full))
        engine = make_engine(syncd_store, tmp_path / "state", {"j": job}, adapters=[adapter],
                             remotes=source_remotes)
        run, outcome = run_job(engine, "j", identifier=source.identifier_override)
        counters = syncd_store.counters(run)
        MemoryTarget.tables.pop(table, None)
        assert (counters["inserted"], counters["updated"]) == (0, 0), (
            f"a second run of unchanged data changed records: {counters}")


def _options(source: AnySource) -> dict[str, Any]:
    options = source.options
    return options.model_dump(exclude_unset=True) if hasattr(options, "model_dump") else {}
