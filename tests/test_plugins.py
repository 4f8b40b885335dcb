"""Plugins: discovery through entry points, overriding, broken plugins, hook coverage."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from syncd import hookimpl, hookspecs
from syncd.config import validate
from syncd.engine import Engine, Request, memory, resolve_jobs
from syncd.errors import PluginError
from syncd.plugins import get_pluginmanager
from syncd.triggers.digest import send_digest
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.insertions import Drive
from syncd.triggers.usb import Pickup, UsbMonitor
from tests.syncd_cli import syncd

PLUGIN = '''
from syncd import hookimpl
from syncd.adapters import Source


class EchoSource(Source):
    name = "{source}"
    description = "echo test source"

    @property
    def identifier(self):
        return "echo"

    def read(self, fields, checkpoint, batch_rows):
        return iter(())


@hookimpl
def {hook}(registry):
    registry.add_source(EchoSource)
'''


def install(site: Path, name: str, body: str) -> None:
    """Install a one-module distribution with a ``syncd`` entry point, as pip would."""
    (site / f"{name}.py").write_text(textwrap.dedent(body))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[syncd]\n{name} = {name}\n")


def plugin(source: str = "echo", hook: str = "syncd_register_adapters") -> str:
    return PLUGIN.format(source=source, hook=hook)


def test_builtin_adapters_come_through_entry_points():
    _, registry = get_pluginmanager()
    assert {"csv"} <= set(registry.sources)
    assert {"sql"} <= set(registry.targets)
    assert registry.origins[("target", "sql")].distribution.startswith("syncd ")


def test_a_third_party_plugin_is_discovered_and_listed(tmp_path):
    install(tmp_path, "syncd_echo", plugin())
    result = syncd("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert re.search(r"source\s+echo\s+syncd_echo \(syncd_echo 1\.0\)", result.stdout)
    assert re.search(r"target\s+sql\s+sql \(syncd ", result.stdout)


def test_a_plugin_overrides_a_builtin_of_the_same_name(tmp_path):
    install(tmp_path, "syncd_mycsv", plugin(source="csv"))
    result = syncd("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert re.search(r"source\s+csv\s+syncd_mycsv", result.stdout)
    assert re.search(r"source\s+csv\s+csv: overridden", result.stdout)


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path):
    install(tmp_path, "syncd_broken", "import not_a_module_anywhere\n")
    result = syncd("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0
    assert "syncd_broken" in result.stderr and "not_a_module_anywhere" in result.stderr
    assert re.search(r"target\s+sql", result.stdout)


LAZY = '''
from syncd import hookimpl


@hookimpl
def syncd_register_adapters(registry):
    registry.add_source("{module}:EchoSource", name="{name}")
'''


def test_a_plugin_registering_by_reference_is_imported_only_when_its_type_is_used(tmp_path):
    (tmp_path / "syncd_echo_impl.py").write_text(plugin(source="lazyecho"))
    install(tmp_path, "syncd_lazyecho", LAZY.format(module="syncd_echo_impl", name="lazyecho"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from syncd.plugins import get_pluginmanager
        _, registry = get_pluginmanager()
        print("LISTED", "lazyecho" in registry.sources, "syncd_echo_impl" in sys.modules)
        print("ASKED", registry.source("lazyecho").__name__, "syncd_echo_impl" in sys.modules)
        """)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert "LISTED True False" in done.stdout, done.stderr
    assert "ASKED EchoSource True" in done.stdout
    result = syncd("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert re.search(r"source\s+lazyecho\s+syncd_lazyecho \(syncd_lazyecho 1\.0\) "
                     r"syncd_echo_impl\s+echo test source", result.stdout)


def test_a_reference_that_cannot_be_imported_names_itself_where_it_is_used(tmp_path):
    install(tmp_path, "syncd_gone", LAZY.format(module="syncd_gone_impl", name="gone"))
    env = {"PYTHONPATH": str(tmp_path)}
    result = syncd("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert "syncd_gone" in result.stderr and "syncd_gone_impl:EchoSource" in result.stderr
    assert re.search(r"target\s+sql", result.stdout)  # the others are listed
    config = tmp_path / "syncd.toml"
    config.write_text(f"[daemon]\nstate_dir = \"{tmp_path}/state\"\n[jobs.j.source]\n"
                      "type = \"gone\"\n[jobs.j.target]\nkey = [\"id\"]\n[jobs.j.mapping]\n"
                      "id = \"id\"\n")
    result = syncd("check-config", "--config", str(config), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "jobs.j.source.type" in result.stderr and "No module named 'syncd_gone_impl'" \
        in result.stderr


def test_a_misspelt_hook_is_an_error(tmp_path):
    install(tmp_path, "syncd_typo", plugin(hook="syncd_register_adaptors"))
    result = syncd("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert "syncd_register_adaptors" in result.stderr and "Traceback" not in result.stderr


def test_misspelt_hook_raises_plugin_error_in_process():
    class Typo:
        from syncd import hookimpl

        @hookimpl
        def syncd_run_finishd(self, summary):
            pass

    with pytest.raises(PluginError, match="syncd_run_finishd"):
        get_pluginmanager(load_entrypoints=False, plugins=(Typo(),))


class Recorder:
    """Implements every hook and records which were called (datasette's approach)."""

    def __init__(self) -> None:
        self.called: dict[str, dict[str, Any]] = {}

    @hookimpl
    def syncd_register_adapters(self, registry: Any) -> None:
        self.called["syncd_register_adapters"] = {"registry": registry}

    @hookimpl
    def syncd_run_started(self, summary: Any) -> None:
        self.called["syncd_run_started"] = {"summary": summary}

    @hookimpl
    def syncd_run_finished(self, summary: Any) -> None:
        self.called["syncd_run_finished"] = {"summary": summary}

    @hookimpl
    def syncd_digest(self, summaries: Any, since: Any, until: Any, notify: Any) -> None:
        self.called["syncd_digest"] = {"summaries": summaries, "notify": notify}

    @hookimpl
    def syncd_drive_inserted(self, drive: Any, root: Path, jobs: Any, dest: Path) -> None:
        self.called["syncd_drive_inserted"] = {"drive": drive, "root": root, "jobs": jobs}


async def test_every_hook_is_called_by_the_daemon_paths(tmp_path, store):
    """Fails when a hookspec is added that no path here calls (not merely names):
    implement it in ``Recorder`` and drive the path that calls it below."""
    memory.MemoryTarget.tables.pop("hooks", None)
    recorder = Recorder()
    pm, registry = get_pluginmanager(plugins=(memory, recorder))  # + the built-ins
    config = validate({
        "daemon": {"state_dir": str(tmp_path / "state")},
        "jobs": {
            "j": {"source": {"type": "memory", "records": [{"id": "1"}]},
                  "target": {"type": "memory", "table": "hooks", "key": ["id"]},
                  "mapping": {"id": "id"}},
            "media": {"source": {"type": "inventory"},
                      "target": {"type": "memory", "table": "m", "key": ["id"]},
                      "mapping": {"id": "id"}, "usb": {"patterns": ["**/*"]}}}})
    engine = Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state", pm=pm)
    _, outcome = await engine.run(Request("j", "cli"))  # started, finished
    assert outcome.status == "completed"
    engine.announce.notify = config.notify.model_copy(update={"on": ["completed"]})
    assert len(await send_digest(engine)) == 1  # the daily digest
    drive_root = tmp_path / "drive"
    (drive_root / "Album").mkdir(parents=True)
    (drive_root / "Album" / "01 - Song.mp3").write_bytes(b"x")
    monitor = UsbMonitor(engine, FileIngestor(engine), config)
    pickup = Pickup()
    drive = Drive("/dev/sdz1", "ext4", "DRIVE", "u-1", None)
    monitor._copy(drive_root, drive, monitor.usb_jobs(), 2**20, threading.Event(), pickup,
                  monitor.log)  # what a mounted drive goes through
    assert pickup.error is None and [p.name for p in pickup.copies["media"]] == [
        "inventory-media.jsonl"]  # the inventory plugin took part too
    assert sorted(recorder.called) == sorted(n for n in dir(hookspecs)
                                             if n.startswith("syncd_"))
    assert recorder.called["syncd_run_started"]["summary"].status == "in_progress"
    assert recorder.called["syncd_run_finished"]["summary"].counters["inserted"] == 1
    assert [j.name for j in recorder.called["syncd_drive_inserted"]["jobs"]] == ["media"]
    await engine.shutdown()
