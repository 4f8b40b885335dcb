"""A SQLite sync imports no run-only library (issue 13: a light start).

Each check runs in a fresh interpreter, since this test process has long imported them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: What a CSV → SQLite sync must not load: what only other adapters' runs need, and
#: PyMySQL with its cryptography (deferred: ``syncd.deferred``). (psycopg2 is left out:
#: peewee uses it as it is imported; rich too: structlog imports it when it is installed.)
HEAVY = ("playhouse.migrate", "jinja2", "aiosmtplib", "aiohttp", "playwright", "PIL",
         "tqdm", "html.parser", "pymysql.connections", "cryptography")
#: ... nor the modules of the adapters its job does not name (registered by reference)
OTHER_ADAPTERS = tuple(f"syncd_builtin.{m}" for m in (
    "inventory_source", "rest_source", "sql_source", "http_index", "browser_source",
    "rest_target", "email_target", "file_target", "browser_target"))

CONFIG = """\
[daemon]
state_dir = "{state}"
log_format = "json"

[jobs.music.source]
type = "csv"

[jobs.music.target]
type = "sql"
table = "content_index"
key = ["external_id"]

[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)


def _sync_of_five_rows(tmp_path: Path) -> list[str]:
    """The arguments of ``syncd sync`` of a 5-row CSV into SQLite in ``tmp_path``."""
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    csv = tmp_path / "five.csv"
    csv.write_text("id,song_name\n" + "".join(f"{i},Song {i}\n" for i in range(1, 6)))
    return ["--config", str(config), "sync", "music", "--file", str(csv)]


def test_a_sqlite_sync_loads_no_run_only_library(tmp_path: Path) -> None:
    done = _python(
        "import sys\n"
        "from syncd.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        f"print('LOADED', [m for m in {HEAVY + OTHER_ADAPTERS!r} if m in sys.modules])\n"
        "sys.exit(rc)\n", *_sync_of_five_rows(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "5 processed, 5 inserted" in done.stdout
    assert "LOADED []" in done.stdout


def test_version_loads_neither_the_store_nor_asyncio() -> None:
    done = _python("import sys\n"
                   "from syncd.cli.main import main\n"
                   "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
                   "print('LOADED', [m for m in ('peewee', 'pydantic', 'asyncio') "
                   "if m in sys.modules])\n")
    assert "LOADED []" in done.stdout, done.stderr


def test_a_reader_process_imports_neither_the_store_nor_the_config_nor_the_engine() -> None:
    """What the reader of a large file imports (``syncd.readchild``, the CSV source, the
    SQL target's preparer, the duplicate-key index): 44 MB and about 0.3 s, where the
    store's models, the config's and the engine made it 64 MB and 0.45 s."""
    done = _python("import sys\n"
                   "import syncd.readchild, syncd.engine.screening\n"
                   "import syncd_builtin.csv_source, syncd_builtin.sql_values\n"
                   "print('LOADED', [m for m in ('peewee', 'syncd.config.schema', "
                   "'syncd.store.runs', 'syncd.engine.engine') if m in sys.modules])\n")
    assert "LOADED []" in done.stdout, done.stderr


def test_set_up_runs_without_the_cyclic_gc_and_the_command_with_it(tmp_path: Path) -> None:
    """The GC is off while a command loads (its passes over start-up's objects cost
    40 ms and freed nothing) and back on, with start-up's objects frozen, for the run
    itself, so a long run collects its garbage; a command that fails to set up leaves it
    on too."""
    done = _python(
        "import gc, sys\n"
        "import syncd.cli.commands as commands\n"
        "from syncd.cli.main import main\n"
        "real = commands.sync\n"
        "def sync(*args, **kwargs):\n"
        "    print('RUN', gc.isenabled(), gc.get_freeze_count() > 10000)\n"
        "    return real(*args, **kwargs)\n"
        "commands.sync = sync\n"
        "def bootstrap_gc(*args):\n"
        "    print('SETUP', gc.isenabled())\n"
        "import syncd.bootstrap as bootstrap\n"
        "load = bootstrap.load\n"
        "bootstrap.load = lambda path: (bootstrap_gc(), load(path))[1]\n"
        "rc = main(sys.argv[1:])\n"
        "print('AFTER', gc.isenabled())\n"
        "bad = main(['--config', sys.argv[2] + '.missing', 'sync', 'music'])\n"
        "print('AFTER FAILURE', bad, gc.isenabled())\n"
        "sys.exit(rc)\n", *_sync_of_five_rows(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "5 processed, 5 inserted" in done.stdout
    assert "SETUP False" in done.stdout
    assert "RUN True True" in done.stdout
    assert "AFTER True" in done.stdout
    assert "AFTER FAILURE 2 True" in done.stdout
