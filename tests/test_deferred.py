"""Modules deferred to their first use (``syncd.deferred``), on throwaway modules whose
code counts how often it ran; and PyMySQL, deferred by ``import syncd``, in a fresh
interpreter against the MariaDB server."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import deferred

RUNS = "import builtins\nbuiltins.deferred_runs = getattr(builtins, 'deferred_runs', 0) + 1\n"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``lazypkg`` (with a submodule) on sys.path; its runs counted from 0."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(RUNS + "VALUE = 42\n")
    (root / "sub.py").write_text("NAME = 'sub'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.deferred_runs", 0, raising=False)
    yield "lazypkg"
    for name in ("lazypkg", "lazypkg.sub"):
        sys.modules.pop(name, None)


def runs() -> int:
    import builtins

    return int(builtins.deferred_runs)  # type: ignore[attr-defined]


def test_import_gets_the_stand_in_and_the_first_attribute_runs_the_module_once(
        package: str) -> None:
    deferred.defer(package)
    import lazypkg

    assert runs() == 0
    assert lazypkg.VALUE == 42
    assert runs() == 1
    assert lazypkg.VALUE == 42 and runs() == 1
    assert type(sys.modules[package]) is not type(lazypkg)  # the real one took its place
    assert sys.modules[package].VALUE == 42 and runs() == 1


def test_from_import_and_a_submodule_load_the_real_package(package: str) -> None:
    deferred.defer(package)
    from lazypkg import VALUE
    from lazypkg.sub import NAME

    assert (VALUE, NAME, runs()) == (42, "sub", 1)


def test_a_module_already_imported_or_absent_is_left_alone(package: str) -> None:
    import lazypkg

    deferred.defer(package)
    assert sys.modules[package] is lazypkg and runs() == 1
    deferred.defer("no_such_module_here")
    assert "no_such_module_here" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import no_such_module_here  # noqa: F401


def test_a_module_that_fails_fails_at_each_use_and_is_not_kept(package: str,
                                                                tmp_path: Path) -> None:
    (tmp_path / "lazypkg" / "__init__.py").write_text(RUNS + "raise RuntimeError('broken')\n")
    deferred.defer(package)
    import lazypkg

    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match="broken"):
            lazypkg.VALUE  # noqa: B018
        assert runs() == attempt and package not in sys.modules


def test_threads_asking_at_once_run_the_module_once(package: str, tmp_path: Path) -> None:
    """Python 3.11 would run it twice if two threads raced (the lock in ``load``)."""
    (tmp_path / "lazypkg" / "__init__.py").write_text(
        RUNS + "import time\ntime.sleep(0.05)\nVALUE = 42\n")
    deferred.defer(package)
    import lazypkg

    start = threading.Barrier(8)
    seen: list[int] = []

    def ask() -> None:
        start.wait()
        seen.append(lazypkg.VALUE)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [42] * 8
    assert runs() == 1


@pytest.mark.mysql
@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
def test_a_fresh_syncd_talks_to_mariadb_through_the_deferred_driver(database_url: str,
                                                                     tmp_path: Path) -> None:
    """peewee got the stand-in at its import; the store's first connection loads PyMySQL."""
    code = (
        "import sys\n"
        "import syncd, peewee\n"
        "from syncd.store import Store\n"
        "print('BEFORE', 'pymysql.connections' in sys.modules, 'cryptography' in sys.modules)\n"
        "store = Store.open(sys.argv[1], __import__('pathlib').Path(sys.argv[2]))\n"
        "print('ROWS', store.db.execute_sql('select 41 + 1').fetchone()[0])\n"
        "print('AFTER', 'pymysql.connections' in sys.modules, peewee.mysql.connect.__module__)\n"
        "store.close()\n")
    done = subprocess.run([sys.executable, "-c", code, database_url, str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "BEFORE False False" in done.stdout
    assert "ROWS 42" in done.stdout
    assert "AFTER True pymysql" in done.stdout
