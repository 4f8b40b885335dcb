"""``syncd idmap``, ``conflicts``, ``resolve`` and ``check`` as a user runs them.

The command runs in a subprocess (``tests.plugged_syncd``: the real command line with
the test adapters installed as plugins) on a config and a store that real export runs
against ``MemoryRemote`` filled (``tests.ledger_data``); no daemon is running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.store import Store, conflicts
from syncd.testing import MemoryRemote
from tests.ledger_data import JOB, fill, records, run

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-LEAK-8f3a9c"

CONFIG = """
[daemon]
state_dir = "{tmp}/state"
log_format = "json"

[jobs.out]
source = {{ type = "memory" }}
target = {{ type = "restish", url = "{url}", key = ["id"] }}
mapping = {{ id = "id", name = "name" }}

[jobs.music]
source = {{ type = "csv", path = "{tmp}/music.csv" }}
target = {{ type = "sql", table = "music", key = ["external_id"] }}
mapping = {{ external_id = "id", title = "title" }}

[jobs.watched]
source = {{ type = "csv" }}
target = {{ type = "sql", table = "watched", key = ["external_id"] }}
mapping = {{ external_id = "id" }}
watch = {{ path = "{tmp}/inbox" }}

[jobs.leaky]
source = {{ type = "csv", path = "{tmp}/music.csv" }}
target = {{ type = "leaky", token = {{ env = "LEAKY_TOKEN" }} }}
mapping = {{ id = "id" }}
"""


@pytest.fixture
def remote() -> Iterator[MemoryRemote]:
    with MemoryRemote() as r:
        yield r


@pytest.fixture
def config(tmp_path: Path, remote: MemoryRemote) -> Path:
    (tmp_path / "music.csv").write_text("id,title\n1,One\n2,Two\n")
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "syncd.toml"
    path.write_text(CONFIG.format(tmp=tmp_path, url=remote.url))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open("", tmp_path / "state")  # the config's store: SQLite in state_dir
    yield s
    s.close()


def syncd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEAKY_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "tests.plugged_syncd", *args, "--config",
                           str(config)], capture_output=True, text=True, env=env, timeout=60,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


def table(stdout: str) -> dict[str, list[str]]:
    """The rows of ``syncd idmap`` by local key: [remote id, state, attempts, next…]."""
    lines = stdout.splitlines()[2:]  # the summary, the column titles
    return {line.split()[0]: line.split()[1:] for line in lines}


async def test_idmap_shows_each_record_and_who_acts_next(tmp_path, config, store, remote):
    await fill(store, tmp_path, remote)
    shown = syncd(config, "idmap", JOB)
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert first == "job out: 8 records: 1 pending, 5 synced, 2 failed"
    rows = table(shown.stdout)
    assert rows.keys() == {str(i) for i in range(8)}
    assert rows["0"][1:4] == ["synced", "0", "-"]
    assert rows["6"][:2] == ["-", "failed"] and rows["6"][3:6] == ["needs", "a", "person"]
    assert "400" in " ".join(rows["6"])
    assert rows["7"][:4] == ["-", "pending", "1", "next"]
    assert rows["2"][1:4] == ["failed", "1", "next"] and rows["2"][0].startswith("r")

    failed = syncd(config, "idmap", JOB, "--state", "failed")
    assert set(table(failed.stdout)) == {"2", "6"}
    page = syncd(config, "idmap", JOB, "--limit", "3")
    assert len(table(page.stdout)) == 3
    assert "--before" in page.stderr
    before = page.stderr.split("--before ")[1].split(")")[0]
    rest = syncd(config, "idmap", JOB, "--before", before)
    assert set(table(page.stdout)) | set(table(rest.stdout)) == {str(i) for i in range(8)}

    data = json.loads(syncd(config, "idmap", JOB, "--json").stdout)
    by_key = {e["localKey"]: e for e in data["entries"]}
    assert (by_key["6"]["transient"], by_key["6"]["needsPerson"]) == (False, True)
    assert (by_key["7"]["transient"], by_key["7"]["errorRetryable"]) == (True, True)
    assert data["counts"]["synced"] == 5

    unknown = syncd(config, "idmap", "nope")
    assert unknown.returncode == 2 and "unknown job 'nope'" in unknown.stderr
    assert syncd(config, "idmap", "music").stdout.startswith("job music: 0 records")


async def test_conflicts_are_listed_by_field_and_resolve_acts_on_the_next_run(
        tmp_path, config, store, remote):
    await run(store, tmp_path, records(range(3)), remote.url)
    assert syncd(config, "conflicts").stdout.strip() == "no open conflicts"
    remote_id = next(i for i, item in remote.items.items() if item["key"] == "1")
    remote.items[remote_id]["name"] = "renamed remotely"
    local = records(range(3), i1="renamed locally")
    conflict = conflicts.record(JOB, "1", remote_id, local[1], remote.items[remote_id])

    listed = syncd(config, "conflicts")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"conflict {conflict}  job out  key 1  remote id {remote_id}")
    assert "name  local 'renamed locally'  |  remote 'renamed remotely'" in listed.stdout
    assert f"syncd resolve {conflict} --keep local|remote" in listed.stdout
    assert "key" in listed.stdout  # a field only the remote has is shown too

    done = syncd(config, "resolve", str(conflict), "--keep", "local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"conflict {conflict} resolved: kept local; the next run "
                                   "of out sends the local record as an update, overwriting "
                                   "the remote")
    again = syncd(config, "resolve", str(conflict), "--keep", "remote")
    assert again.returncode == 1 and "already resolved (kept local)" in again.stderr
    missing = syncd(config, "resolve", "999", "--keep", "local")
    assert missing.returncode == 1 and "no conflict 999" in missing.stderr
    bad = syncd(config, "resolve", str(conflict), "--keep", "both")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert table(syncd(config, "idmap", JOB).stdout)["1"][1:4] == ["pending", "0", "next"]
    assert syncd(config, "conflicts").stdout.strip() == "no open conflicts"
    assert "resolved: kept local" in syncd(config, "conflicts", "--all").stdout

    after = await run(store, tmp_path, local, remote.url)
    assert after.items_updated == 1
    assert remote.items[remote_id]["name"] == "renamed locally"


def test_check_reaches_both_sides_and_touches_nothing(tmp_path, config, store):
    done = syncd(config, "check", "music")
    assert done.returncode == 0, done.stdout + done.stderr
    source, target = done.stdout.splitlines()
    assert source.startswith(f"source csv: ok: file {tmp_path / 'music.csv'} is readable")
    assert target.startswith("target sql: ok: the sqlite database answers; table music does "
                             "not exist yet and can be created (tried, rolled back)")
    assert not store.db.table_exists("music")  # tried, not kept

    watched = syncd(config, "check", "watched")
    assert watched.returncode == 0, watched.stdout
    assert f"reads what arrives in the watched folder {tmp_path / 'inbox'}" in watched.stdout

    (tmp_path / "music.csv").unlink()
    gone = syncd(config, "check", "music", "--json")
    assert gone.returncode == 1
    report = json.loads(gone.stdout)
    assert (report["ok"], report["source"]["ok"], report["target"]["ok"]) == (False, False, True)
    assert "No such file" in report["source"]["message"]
    assert syncd(config, "check", "nope").returncode == 2


def test_check_of_an_export_job_and_no_secret_in_what_a_careless_adapter_says(config, remote):
    out = syncd(config, "check", "out")
    assert out.returncode == 0, out.stdout + out.stderr
    source, target = out.stdout.splitlines()
    assert source.startswith("source memory: ok: opened; this source has no check of its own")
    assert target.startswith(f"target restish: ok: GET {remote.url}/items answered")
    leaky = syncd(config, "check", "leaky")
    assert leaky.returncode == 1
    assert "target leaky: FAILED (auth): the remote refused the token *** (HTTP 401)" in (
        leaky.stdout)
    assert TOKEN not in leaky.stdout + leaky.stderr
