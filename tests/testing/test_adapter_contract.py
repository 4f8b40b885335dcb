"""Every adapter syncd ships, and the example REST-ish one, through the contract suites.

The suites are ``syncd.testing``'s (what a third-party plugin's tests subclass too);
the last tests check that every adapter the registry holds has a contract test here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from syncd.adapters import Batch, Source
from syncd.engine.memory import MemorySource, MemoryTarget
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd.testing import (
    MemoryRemote,
    RecordTargetContract,
    SourceContract,
    StoreTargetContract,
    adapters_without_contract,
    make_engine,
    run_job,
)
from syncd.testing.contracts.base import Contract
from syncd.testing.engine import temporary_database
from syncd_builtin.csv_source import CsvSource
from syncd_builtin.email_target import EmailTarget
from syncd_builtin.file_target import FileTarget
from syncd_builtin.http_index import HttpIndexSource
from syncd_builtin.inventory_source import InventorySource, write_snapshot
from syncd_builtin.rest_source import RestSource
from syncd_builtin.rest_target import RestTarget
from syncd_builtin.sql_source import SqlSource
from syncd_builtin.sql_target import SqlTarget
from tests.conftest import BACKENDS, MYSQL_ADMIN, PG_ADMIN, _server_up
from tests.fakes.catalog import Catalog, make_records
from tests.fakes.fileserver import FileServer
from tests.fakes.smtp import SmtpServer
from tests.restish import RestishTarget
from tests.testing.browser_contract import TestBrowserSource, TestBrowserTarget

# -- sources -------------------------------------------------------------------------


class TestCsvSource(SourceContract):
    adapter = CsvSource

    @pytest.fixture
    def make_source(self, tmp_path: Path) -> Any:
        path = tmp_path / "good.csv"
        path.write_text("id,name\n" + "".join(f'{i},"item\n{i}"\n' for i in range(7)))
        return lambda: CsvSource(CsvSource.Options(path=str(path)))

    @pytest.fixture
    def make_bad_source(self, tmp_path: Path) -> Any:
        path = tmp_path / "bad.csv"
        path.write_bytes(b"id,name\n0,a\n1,b,extra\n2,c\n3,\xff\xfe\x00bad\n4\n5,e\n6,f\n")
        return lambda: CsvSource(CsvSource.Options(path=str(path), encoding="utf-8"))

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "name"]


class TestSqlSource(SourceContract):
    adapter = SqlSource

    @pytest.fixture
    def make_source(self, tmp_path: Path) -> Any:
        import sqlite3

        path = tmp_path / "local.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
            db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(7)])
        return lambda: SqlSource(SqlSource.Options(table="items", database=f"sqlite:///{path}"))

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "name"]


class TestInventorySource(SourceContract):
    adapter = InventorySource

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        root = tmp_path / "music"
        for i, rel in enumerate(["a/1.mp3", "a/2.mp3", "b/c/3.flac", "b/4.ogg", "5.txt",
                                 "z/6.mp3"]):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x" * i)
        return root

    @pytest.fixture
    def make_source(self, tree: Path) -> Any:
        return lambda: InventorySource(InventorySource.Options(path=str(tree)))

    @pytest.fixture
    def make_bad_source(self, tree: Path, tmp_path: Path) -> Any:
        """A drive's snapshot with a folder that could not be listed and a torn line."""
        snapshot = tmp_path / "drive.jsonl"
        write_snapshot(tree, snapshot, {"uuid": "1234"})
        lines = snapshot.read_text().splitlines()
        lines.insert(3, json.dumps({"path": "a/locked", "error": "Permission denied"}))
        lines.insert(5, '{"path": "b/torn", "si')
        snapshot.write_text("\n".join(lines) + "\n")
        return lambda: InventorySource(InventorySource.Options(path=str(snapshot)))

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "path", "size"]


class TestHttpIndexSource(SourceContract):
    adapter = HttpIndexSource

    @pytest.fixture
    def server(self, tmp_path: Path) -> Iterator[FileServer]:
        root = tmp_path / "served"
        for i, rel in enumerate(["a/1.mp3", "a/2.mp3", "b/c/3.flac", "b/4.ogg", "5.txt",
                                 "d/6.mp3", "e/7.mp3", "z/8.mp3"]):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x" * i)
        with FileServer(root) as running:
            yield running

    @pytest.fixture
    def make_source(self, server: FileServer) -> Any:
        options = HttpIndexSource.Options(url=server.base("apache"))
        return lambda: HttpIndexSource(options)

    @pytest.fixture
    def make_bad_source(self, server: FileServer) -> Any:
        """A folder that answers 404 and one whose answer is no listing."""
        server.fail("b/c/", 404)
        server.garble("e/")
        options = HttpIndexSource.Options(url=server.base("nginx-json"))
        return lambda: HttpIndexSource(options)

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["url", "path", "size"]


class TestMemorySource(SourceContract):
    adapter = MemorySource

    @pytest.fixture
    def make_source(self) -> Any:
        records = [{"id": str(i), "name": f"item {i}"} for i in range(7)]
        return lambda: MemorySource(MemorySource.Options(records=records))

    @pytest.fixture
    def make_bad_source(self) -> Any:
        records = [{"id": str(i), "name": f"item {i}"} for i in range(7)]
        records[2] = {"id": "2"}
        records[5] = {"name": "no id"}
        return lambda: MemorySource(MemorySource.Options(records=records, label="bad"))

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "name"]


class TestRestSource(SourceContract):
    adapter = RestSource

    @pytest.fixture
    def catalog(self) -> Iterator[Catalog]:
        with Catalog(make_records(7)) as fake:
            yield fake

    @pytest.fixture
    def bad_catalog(self) -> Iterator[Catalog]:
        with Catalog([*make_records(3), "not a record", *make_records(3, 4)]) as fake:
            yield fake

    @staticmethod
    def _maker(catalog: Catalog) -> Any:
        pages = {"type": "page", "limit_param": "limit", "limit": 3}
        return lambda: RestSource(RestSource.Options(
            url=catalog.url, path="/catalog/page", data_path="data.items", pagination=pages))

    @pytest.fixture
    def make_source(self, catalog: Catalog) -> Any:
        return self._maker(catalog)

    @pytest.fixture
    def make_bad_source(self, bad_catalog: Catalog) -> Any:
        return self._maker(bad_catalog)

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "artist.name"]


# -- targets -------------------------------------------------------------------------


class TestSqlTarget(StoreTargetContract):
    adapter = SqlTarget
    columns = ("external_id", "title")  # `id` is the table's own

    @pytest.fixture(params=BACKENDS)
    def syncd_database_url(self, request: pytest.FixtureRequest) -> Iterator[str]:
        """SQLite, and a fresh database on each server of tests/conftest.py."""
        if request.param == "sqlite":
            yield ""
            return
        reason = _server_up(request.param)
        if reason:
            pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
        with temporary_database(PG_ADMIN if request.param == "postgres" else MYSQL_ADMIN
                                ) as url:
            yield url

    @pytest.fixture
    def target_options(self) -> dict[str, Any]:
        return {"table": "contract", "key": ["external_id"]}

    @pytest.fixture
    def stored(self, syncd_store: Store) -> Any:
        return lambda: [(r[0], bool(r[1])) for r in syncd_store.db.execute_sql(
            "SELECT external_id, is_available FROM contract").fetchall()]


class TestMemoryTarget(StoreTargetContract):
    """The engine's test fake writes through ``ctx.sql`` like any store target."""

    adapter = MemoryTarget

    @pytest.fixture
    def target_options(self) -> Iterator[dict[str, Any]]:
        MemoryTarget.tables.pop("contract", None)
        yield {"table": "contract", "key": ["id"]}
        MemoryTarget.tables.pop("contract", None)

    @pytest.fixture
    def stored(self) -> Any:
        return lambda: [(k[0], v["_available"])
                        for k, v in MemoryTarget.tables.get("contract", {}).items()]


class TestRestTargetContract(RecordTargetContract):
    """The adapter contract, against ``syncd.testing``'s memory remote."""

    adapter = RestTarget

    def record(self, i: int) -> dict[str, Any]:
        return {"id": str(i), "name": f"item {i}", "key": str(i)}

    @pytest.fixture
    def target_options(self, memory_remote: Any) -> dict[str, Any]:
        return {"url": memory_remote.url, "key": ["id"], "send_key": True,
                "create": {"method": "POST", "path": "/items"},
                "update": {"method": "PUT", "path": "/items/{remote_id}"},
                "delete": {"method": "DELETE", "path": "/items/{remote_id}"},
                "lookup": {"path": "/items?key={key}", "match": ["key"]},
                "name_field": "key"}


class TestEmailTarget(RecordTargetContract):
    """Per record, so the mailbox holds one message per change (subject: change, key);
    SMTP has no lost answers to provoke, and a refused message fails the run."""

    adapter = EmailTarget

    @pytest.fixture
    def smtp(self) -> Iterator[SmtpServer]:
        server = SmtpServer(None).start()
        yield server
        server.stop()

    @pytest.fixture
    def target_options(self, smtp: SmtpServer) -> dict[str, Any]:
        return {"smtp": f"smtp://127.0.0.1:{smtp.port}", "from": "syncd@example.test",
                "to": ["agency@example.test"], "mode": "per_record", "key": ["id"],
                "subject": "{change} {id}"}

    @pytest.fixture
    def remote_keys(self, smtp: SmtpServer) -> Any:
        def held() -> list[str]:
            keys: list[str] = []
            for message in smtp.messages:
                change, key = str(message["Subject"]).split(" ", 1)
                if change == "new":
                    keys.append(key)
                elif change == "removed":
                    keys.remove(key)
            return keys
        return held

    @pytest.fixture
    def fail_next(self, smtp: SmtpServer) -> Any:
        return smtp.fail_next

    @pytest.fixture
    def lose_next_answer(self) -> None:
        return None

    @pytest.fixture
    def refuse_next(self) -> None:
        return None


class TestFileTarget(Contract):
    """A whole-file target fits neither suite (no id map, not the store's database): its
    contract is that a run's output appears whole, and a rerun writes the same file.
    tests/builtin/test_file_target.py covers readers, failures and restarts."""

    adapter = FileTarget

    def test_it_writes_outside_the_store_and_starts_over_when_resumed(self) -> None:
        caps = self.adapter.capabilities
        assert (caps.store, caps.resumable) == (False, False)

    def test_a_rerun_writes_the_same_file(self, syncd_store: Store, tmp_path: Path) -> None:
        final = tmp_path / "out.csv"
        engine = make_engine(syncd_store, tmp_path / "state", {"contract": {
            "source": {"type": "memory", "records": [{"id": str(i)} for i in range(5)]},
            "mapping": {"id": "id"}, "batch_rows": 2,
            "target": {"type": "file", "path": str(final)}}}, adapters=[FileTarget])
        contents = []
        for _ in range(2):
            _run, outcome = run_job(engine, "contract")
            assert outcome.status == "completed", outcome.error
            contents.append(final.read_bytes())
        assert contents[0] == contents[1] == b"id\r\n" + b"".join(
            f"{i}\r\n".encode() for i in range(5))


class TestRestishTarget(RecordTargetContract):
    adapter = RestishTarget

    @pytest.fixture
    def target_options(self, memory_remote: MemoryRemote) -> dict[str, Any]:
        return {"url": memory_remote.url, "key": ["id"]}


# the browser target and source (real Chromium) are in browser_contract.py
__all__ = ["TestBrowserSource", "TestBrowserTarget"]


# -- every registered adapter is covered ------------------------------------------------


def registered() -> list[type]:
    """What the daemon would load (entry points), and the in-memory pair."""
    _, registry = get_pluginmanager()
    assert not registry.failed, f"plugins that did not load: {registry.failed}"
    return [*registry.sources.values(), *registry.targets.values(), MemorySource,
            MemoryTarget, RestishTarget, readme.NotesTarget]


def test_every_registered_adapter_has_a_contract_test() -> None:
    missing = adapters_without_contract(registered())
    assert not missing, ("adapters without a contract test in "
                         "tests/testing/test_adapter_contract.py: "
                         + ", ".join(f"{a.__module__}.{a.__qualname__}" for a in missing))


def test_an_adapter_without_a_contract_test_is_named() -> None:
    class Lonely(Source):
        name = "lonely"
        identifier = "nowhere"

        def read(self, fields: Any, checkpoint: Any, batch_rows: int) -> Iterator[Batch]:
            yield Batch([], [], {})

    assert adapters_without_contract([*registered(), Lonely]) == [Lonely]


def test_a_contract_test_must_name_its_adapter() -> None:
    with pytest.raises(TypeError, match="adapter"):
        type("TestNothing", (SourceContract,), {"__module__": __name__})


# -- README's example plugin passes the contract it shows ---------------------------------


def readme_example() -> ModuleType:
    """The plugin of README's "Writing an adapter", as its own module."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = text.split("```python\n# my_package/notes.py\n", 1)[1].split("```", 1)[0]
    module = ModuleType("readme_notes")
    exec(compile(code, "README.md (my_package/notes.py)", "exec"), module.__dict__)
    return module


readme = readme_example()


class TestReadmeExample(RecordTargetContract):
    adapter = readme.NotesTarget

    @pytest.fixture
    def target_options(self, memory_remote: MemoryRemote) -> dict[str, Any]:
        return {"url": memory_remote.url}


# -- the pytest plugin -----------------------------------------------------------------


def test_the_pytest_plugin_is_registered_for_pytest() -> None:
    [plugin] = [ep for ep in entry_points(group="pytest11") if ep.name == "syncd"]
    assert plugin.value == "syncd.testing.plugin"


def test_the_engine_fixture_runs_jobs_on_the_store_fixture(syncd_engine: Any,
                                                           syncd_store: Store) -> None:
    records = [{"id": str(i), "name": f"n{i}"} for i in range(4)]
    job = {"source": {"type": "memory", "records": records},
           "target": {"type": "memory", "table": "plugin-fixture", "key": ["id"]},
           "mapping": {"id": "id", "name": "name"}}
    try:
        run, outcome = run_job(syncd_engine({"j": job}), "j")
        assert outcome.status == "completed", outcome.error
        assert syncd_store.counters(run)["inserted"] == 4
        assert len(MemoryTarget.tables["plugin-fixture"]) == 4
    finally:
        MemoryTarget.tables.pop("plugin-fixture", None)
