"""How the command line's modules depend on each other, and what each command loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "syncd" / "cli"


def cli_imports(path: Path) -> set[str]:
    """The ``syncd.cli`` modules ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.removeprefix("syncd.cli.") for n in names if n.startswith("syncd.cli.")}
    return found & {p.stem for p in CLI.glob("*.py")}


def test_the_cli_modules_import_each_other_without_a_cycle() -> None:
    graph = {path.stem: cli_imports(path) for path in CLI.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join([*trail, module])}"
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize(("command", "loads_aiohttp"), [
    (["check-config"], False), (["sync", "music"], False), (["runs"], True)])
def test_only_the_client_commands_load_aiohttp(tmp_path: Path, command: list[str],
                                               loads_aiohttp: bool) -> None:
    (tmp_path / "music.csv").write_text("id,song_name\n1,One\n")
    config = tmp_path / "syncd.toml"
    config.write_text(f"""\
[daemon]
state_dir = "{tmp_path}/state"
[api]
listen = "unix:{tmp_path}/none.sock"
[jobs.music.source]
type = "csv"
path = "{tmp_path}/music.csv"
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
""")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "syncd.cli.main",
                             *command, "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == (3 if command == ["runs"] else 0), result.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    assert ("aiohttp" in loaded) == loads_aiohttp
