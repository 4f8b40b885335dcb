"""Plugins: discovery through entry points, overriding, broken plugins, hook coverage."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from syncd import hookspecs
from syncd.errors import PluginError
from syncd.plugins import get_pluginmanager
from tests.cli import syncd

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


def test_every_hook_is_tested():
    """Fails when a hookspec is added without a test that uses it."""
    names = [n for n in dir(hookspecs) if n.startswith("syncd_")]
    text = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py")
                   if p.name != Path(__file__).name)
    untested = [n for n in names if n not in text]
    assert not untested, f"hooks without a test: {untested}"
