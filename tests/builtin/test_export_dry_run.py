"""``syncd sync --dry-run`` of an export: the requests it would send, secrets masked, and
counts the real run then matches exactly (the Broadstreet hierarchy, a real fake)."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.api import make_app
from tests import export_setup as ex
from tests.api_fixtures import answer, build
from tests.fakes.broadstreet import BroadstreetFake
from tests.poll import wait_for
from tests.syncd_cli import syncd

TOKEN = "bs-dry-run-token-5c1e"
REPORT = re.compile(r"dry run of (\w+): (\d+) creates, (\d+) updates, (\d+) deletes, "
                    r"(\d+) conflicts, (\d+) renames, (\d+) deferred")
SUMMARY = re.compile(r"run \d+ (\w+) completed: \d+ processed, (\d+) inserted, (\d+) updated, "
                     r"\d+ unchanged, (\d+) skipped")


@pytest.fixture
def api() -> Iterator[BroadstreetFake]:
    with BroadstreetFake(token=TOKEN) as fake:
        yield fake


def config(root: Path, url: str) -> Path:
    """The seed's export through a [remotes.bs] whose api_key goes in the query."""
    cfg = ex.write_config(root, url, target_extra='conflict = "review"')
    text = cfg.read_text().replace(f"url = \"{url}\"", 'remote = "bs"')
    text += (f'\n[remotes.bs]\nbase_url = "{url}"\n[remotes.bs.auth]\ntype = "api_key"\n'
             'name = "access_token"\nin = "query"\nvalue = { env = "BS_TOKEN" }\n')
    cfg.write_text(text)
    return cfg


def sync(cfg: Path, *args: str) -> str:
    done = syncd("sync", *args, "--config", str(cfg), env={"BS_TOKEN": TOKEN})
    assert done.returncode == 0, done.stdout + done.stderr
    assert TOKEN not in done.stdout + done.stderr
    return done.stdout


def planned(out: str) -> dict[str, tuple[int, ...]]:
    """job → (creates, updates, deletes, conflicts, renames, deferred) of a dry run."""
    return {m[1]: tuple(int(n) for n in m.groups()[1:]) for m in REPORT.finditer(out)}


def applied(out: str) -> dict[str, tuple[int, int, int]]:
    """job → (inserted, updated, skipped) of a real run."""
    return {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in SUMMARY.finditer(out)}


def test_dry_run_shows_the_requests_and_the_real_run_gives_its_counts(
        api: BroadstreetFake, tmp_path: Path) -> None:
    api.seed("networks", "Network 0")  # someone else's: the local one is renamed
    data = ex.hierarchy()
    data["advertisers"].append({"id": 900, "network_id": 1, "name": "Advertiser 0"})
    ex.load(tmp_path, data)
    cfg = config(tmp_path, api.url)

    out = sync(cfg, "--all", "--dry-run")
    assert not api.writes() and not ex.id_map(tmp_path), "a dry run sends and keeps nothing"
    plan = planned(out)
    assert set(plan) == set(ex.JOBS)
    assert plan["networks_out"] == (2, 0, 0, 0, 1, 0)
    assert plan["advertisers_out"] == (5, 0, 0, 0, 1, 0), out  # the local twin: "… (1)"
    assert plan["placements_out"][0] == len(data["placements"])
    assert f"would send POST {api.url}/networks?access_token=*** " in out
    assert '"name": "Network 0 (1)"' in out and "would rename key 1" in out
    # downstream paths hold the ids their upstream creates would get
    assert (f"{api.url}/networks/%7Bnew%3Anetworks_out%3A1%7D/advertisers"
            "?access_token=***") in out

    real = applied(sync(cfg, "--all"))
    for job, (creates, updates, _deletes, conflicts, _renames, deferred) in plan.items():
        assert real[job] == (creates, updates, conflicts + deferred), job
    assert len(api.named("networks", "Network 0 (1)")) == 1 and not api.duplicates()

    # one local change, one changed on both sides (review): dry run, then apply
    ex.execute(tmp_path, "UPDATE advertisers SET notes = 'local' WHERE id IN (4, 9)")
    both = ex.execute(tmp_path, "SELECT remote_id FROM id_map WHERE job = 'advertisers_out' "
                      "AND local_key = '9'")[0][0]
    api.records["advertisers"][both]["notes"] = "theirs"
    writes = len(api.writes())
    plan = planned(sync(cfg, "--all", "--dry-run"))
    assert len(api.writes()) == writes
    assert plan["advertisers_out"] == (0, 1, 0, 1, 0, 0)
    assert all(sum(p[:4]) == 0 for j, p in plan.items() if j != "advertisers_out")
    real = applied(sync(cfg, "--all"))
    assert real["advertisers_out"] == (0, 1, 1)
    with sqlite3.connect(ex.database(tmp_path)) as db:
        assert db.execute("SELECT COUNT(*) FROM sync_conflicts").fetchone()[0] == 1
        for (value,) in db.execute("SELECT checkpoint FROM sync_runs"):
            assert TOKEN not in (value or "")
    for report in (tmp_path / "state" / "dry-runs").iterdir():
        assert TOKEN not in report.read_text()


async def test_the_api_dry_run_answers_the_report(api: BroadstreetFake, tmp_path: Path,
                                                  aiohttp_client: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BS_TOKEN", TOKEN)
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North"}, {"id": 2, "name": " South "}]})
    loaded = tomllib.loads(config(tmp_path, api.url).read_text())
    jobs = {"networks_out": loaded["jobs"]["networks_out"]}
    h = build(tmp_path / "state", jobs, remotes=loaded["remotes"])
    client = await aiohttp_client(make_app(h.context))
    try:
        started = await answer(await client.post("/v1/sync/trigger", json={
            "job": "networks_out", "dryRun": True}), 202)
        run_id = started["syncRunId"]

        async def done() -> dict[str, Any] | None:
            body = await answer(await client.get(f"/v1/sync/{run_id}"), 200)
            return body if body["status"] == "completed" else None

        run = await wait_for(done, timeout=30)
        report = run["dryRunReport"]
        assert (report["creates"], report["updates"], report["requestsTotal"]) == (2, 0, 2)
        bodies = sorted(r["body"]["name"] for r in report["requests"])
        assert bodies == ["North", "South"]  # the body as sent: clean, trimmed
        assert all(r["url"] == f"{api.url}/networks?access_token=***"
                   for r in report["requests"])
        assert TOKEN not in str(run) and not api.writes() and not ex.id_map(tmp_path)
    finally:
        await h.close()
        h.store.close()
