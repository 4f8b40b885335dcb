"""A module another one imports, loaded when first used (``syncd.deferred``): on a
throwaway package whose code counts how often it ran; and PyMySQL behind peewee, in
fresh interpreters, against the MariaDB server."""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.deferred import StandIn, standing_in

RUNS = "import builtins\nbuiltins.deferred_runs = getattr(builtins, 'deferred_runs', 0) + 1\n"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package ``lazypkg`` (with a submodule) on sys.path, its runs counted from 0;
    returns its ``__init__.py``."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(RUNS + "VALUE = 42\n")
    (root / "sub.py").write_text("NAME = 'sub'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.deferred_runs", 0, raising=False)
    yield root / "__init__.py"
    for name in ("lazypkg", "lazypkg.sub"):
        sys.modules.pop(name, None)


def runs() -> int:
    import builtins

    return int(builtins.deferred_runs)  # type: ignore[attr-defined]


def held() -> types.ModuleType:
    """What a module imported in a ``standing_in`` block keeps (peewee's ``mysql``)."""
    with standing_in("lazypkg"):
        import lazypkg
    return lazypkg


def test_the_holder_gets_a_stand_in_that_runs_the_module_once_on_first_use(
        package: Path) -> None:
    holder = held()
    assert isinstance(holder, StandIn)
    assert "lazypkg" not in sys.modules and runs() == 0  # out of sys.modules at once
    assert holder.VALUE == 42 and runs() == 1
    assert holder.VALUE == 42 and runs() == 1
    import lazypkg

    assert not isinstance(lazypkg, StandIn) and lazypkg.VALUE == 42 and runs() == 1


def test_another_import_of_the_package_or_a_submodule_loads_it_whole_and_once(
        package: Path) -> None:
    """The stand-in is never a parent package: ``import lazypkg.sub`` runs ``lazypkg``
    first, as always, and the holder then answers from that same module."""
    holder = held()
    import lazypkg.sub

    assert runs() == 1 and lazypkg.sub.NAME == "sub"
    assert holder.sub is sys.modules["lazypkg.sub"] and runs() == 1


def test_a_module_already_imported_or_absent_is_left_alone(package: Path) -> None:
    import lazypkg

    assert held() is lazypkg and runs() == 1
    with standing_in("no_such_module_here"):
        assert "no_such_module_here" not in sys.modules
        with pytest.raises(ModuleNotFoundError):
            import no_such_module_here  # noqa: F401


def test_a_module_that_fails_fails_at_each_use_and_is_not_kept(package: Path) -> None:
    package.write_text(RUNS + "raise RuntimeError('broken')\n")
    holder = held()
    for attempt in (1, 2):
        with pytest.raises(RuntimeError, match="broken"):
            holder.VALUE  # noqa: B018
        assert runs() == attempt and "lazypkg" not in sys.modules


def test_threads_asking_at_once_run_the_module_once(package: Path) -> None:
    # the module's own import is slow, so the other threads ask while it runs (not a wait
    # of the test's: the threads are released together by the barrier below)
    package.write_text(RUNS + "import time\ntime.sleep(0.05)\nVALUE = 42\n")
    holder = held()
    start = threading.Barrier(8)
    seen: list[int] = []

    def ask() -> None:
        start.wait()
        seen.append(holder.VALUE)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [42] * 8
    assert runs() == 1


def _fresh(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_peewee_from_syncd_leaves_pymysql_unloaded_and_one_copy_of_it_later() -> None:
    """PyMySQL's LOAD DATA guard (``store.local_files``) patches ``pymysql.connections``:
    a second copy of that module would leave the connections unguarded."""
    out = _fresh("import sys\n"
                 "from syncd.store.orm import pw\n"
                 "print('LOADED', 'pymysql' in sys.modules, 'cryptography' in sys.modules)\n"
                 "import pymysql.connections\n"
                 "import pymysql\n"
                 "print('ONE COPY', pymysql.connect is pymysql.connections.Connection,\n"
                 "      pw.mysql.connect is pymysql.connect)\n")
    assert "LOADED False False" in out
    assert "ONE COPY True True" in out


@pytest.mark.mysql
@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
def test_a_fresh_syncd_talks_to_mariadb_through_the_stand_in(database_url: str,
                                                            tmp_path: Path) -> None:
    out = _fresh("import sys\n"
                 "from pathlib import Path\n"
                 "from syncd.store import Store\n"
                 "from syncd.store.orm import pw\n"
                 "print('BEFORE', 'pymysql.connections' in sys.modules)\n"
                 "store = Store.open(sys.argv[1], Path(sys.argv[2]))\n"
                 "print('ROWS', store.db.execute_sql('select 41 + 1').fetchone()[0])\n"
                 "import pymysql.connections as c\n"
                 "print('GUARDED', c._send_local_file.__module__)\n"
                 "store.close()\n", database_url, str(tmp_path / "state"))
    assert "BEFORE False" in out
    assert "ROWS 42" in out
    assert "GUARDED syncd.store.local_files" in out
