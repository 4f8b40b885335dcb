"""Which runs go to a worker process (``[daemon] isolate_runs``); the processes
themselves are tested with a real daemon in ``tests/test_isolated_runs.py``."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd import bootstrap
from syncd.engine import Engine, worker
from syncd.engine.memory import MemorySource
from syncd.engine.worker import AUTO_MIN_SIZE, WorkerSettings, qualifies
from syncd.store import Store
from syncd.testing import make_engine, run_job
from syncd_builtin import adapters

CONFIG = """\
[daemon]
state_dir = "{state}"
{isolate}
[jobs.music.source]
type = "csv"
path = "{csv}"
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
[jobs.api.source]
type = "rest"
url = "http://127.0.0.1:9/items"
[jobs.api.target]
type = "sql"
key = ["external_id"]
[jobs.api.mapping]
external_id = "id"
[jobs.mail.source]
type = "csv"
path = "{csv}"
[jobs.mail.target]
type = "file"
path = "{state}/out.csv"
[jobs.mail.mapping]
id = "id"
"""


def setup_with(tmp_path: Path, isolate: str) -> bootstrap.Setup:
    csv = tmp_path / "music.csv"
    csv.write_text("id\n1\n2\n", encoding="utf-8")
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state", csv=csv, isolate=isolate),
                    encoding="utf-8")
    return bootstrap.load(path)


@pytest.mark.parametrize(("line", "min_size"), [("", AUTO_MIN_SIZE),
                                                ('isolate_runs = "auto"', AUTO_MIN_SIZE),
                                                ("isolate_runs = true", 0),
                                                ("isolate_runs = false", None)])
def test_the_setting_chooses_which_runs_may_leave_the_daemon(tmp_path, line, min_size):
    setup = setup_with(tmp_path, line)
    store = Store.open("", tmp_path / "state")
    settings = setup.worker_settings(store)
    assert (settings and settings.min_size) == min_size
    if settings is not None:  # the plugins are imported once, by the fork server
        assert "syncd_builtin.csv_source" in settings.preload
        assert settings.holder == store.claims.holder and settings.nice > 0
    store.close()


def test_only_local_sources_into_the_store_of_the_size_asked_for(tmp_path):
    plans = setup_with(tmp_path, "").plans
    music = plans["music"]
    source = music.make_source()
    size = (tmp_path / "music.csv").stat().st_size
    assert qualifies(music, source, None, size)
    assert not qualifies(music, source, None, size + 1)  # too small for auto
    assert qualifies(music, source, None, 0)
    assert not qualifies(music, source, object(), 0)  # a dry run of sync --all
    assert not qualifies(plans["api"], plans["api"].make_source(), None, 0)  # remote
    assert not qualifies(plans["mail"], plans["mail"].make_source(), None, 0)  # not the store
    (tmp_path / "music.csv").unlink()  # unreadable: stays in a thread, which says so
    assert not qualifies(music, source, None, 1)


def test_a_bad_value_names_the_key(tmp_path):
    with pytest.raises(Exception, match="isolate_runs"):
        setup_with(tmp_path, 'isolate_runs = "sometimes"')


class LockedSource(MemorySource):
    """A third party's source holding what cannot be pickled (a lock)."""

    name = "locked"

    def __init__(self, options: MemorySource.Options, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.lock = threading.Lock()


def engine_with_worker(store: Store, tmp_path: Path, source: str,
                       database: str = "") -> Engine:
    job = {"source": {"type": source, "records": [{"id": f"r{i}"} for i in range(30)]},
           "target": {"type": "sql", "key": ["external_id"]},
           "mapping": {"external_id": "id"}, "batch_rows": 10}
    engine = make_engine(store, tmp_path / "state", {"m": job}, adapters=[LockedSource],
                         plugins=[adapters.sql])
    engine.worker = WorkerSettings(database, tmp_path / "state", store.claims.holder,
                                   store.claims.lease_s, "json")
    return engine


def test_a_source_that_cannot_be_sent_runs_in_a_thread(tmp_path):
    store = Store.open("", tmp_path / "state")
    with capture_logs() as logs:
        run, outcome = run_job(engine_with_worker(store, tmp_path, "locked"), "m")
    assert outcome.status == "completed" and run.items_inserted == 30
    assert any(e["event"].startswith("run stays in a thread") for e in logs), logs
    store.close()


def test_a_worker_that_cannot_open_the_store_fails_its_run_retryably(tmp_path):
    store = Store.open("", tmp_path / "state")
    engine = engine_with_worker(store, tmp_path, "memory",
                                database="sqlite:////nonexistent-dir/syncd.db")
    run, outcome = run_job(engine, "m")
    assert outcome.status == "failed" and "worker process failed" in (outcome.error or "")
    [error] = store.errors_of(run.id)
    assert error.is_retryable and run.items_processed == 0
    store.close()


class _Exited(Exception):
    pass


def test_a_worker_whose_daemon_is_gone_exits_instead_of_failing_its_run(monkeypatch):
    """A progress report sent after the daemon died ends the worker at once, as its stop
    listener does: the broken pipe must not become the run's own failure (recorded
    ``failed``, the next start would not resume it)."""
    def exit_(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(worker.os, "_exit", exit_)
    ours, theirs = multiprocessing.Pipe()
    send = worker.sender(theirs)
    send(("progress", 1))
    assert ours.recv() == ("progress", 1)
    ours.close()  # the daemon is gone
    with pytest.raises(_Exited) as exited:
        send(("progress", 2))
    assert exited.value.args == (worker.PARENT_GONE,)
