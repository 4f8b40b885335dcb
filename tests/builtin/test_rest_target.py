"""The REST target exporting seed 002's Broadstreet hierarchy through ``syncd sync --all``.

Real processes against a real aiohttp fake: the local tables live in the store's SQLite
file, the six jobs are linked by ``references``, and the fake records every request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import export_setup as ex
from tests.fakes.broadstreet import BroadstreetFake
from tests.syncd_cli import syncd


@pytest.fixture
def api() -> Iterator[BroadstreetFake]:
    with BroadstreetFake() as fake:
        yield fake


def sync(cfg: Path, *args: str) -> str:
    done = syncd("sync", *args, "--config", str(cfg), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def remote_of(root: Path, job: str, key: Any) -> str:
    rows = ex.execute(root, "SELECT remote_id FROM id_map WHERE job = ? AND local_key = ?",
                      (job, str(key)))
    assert rows and rows[0][0], (job, key)
    return str(rows[0][0])


def test_the_hierarchy_exports_in_order_with_ids_names_and_clean_payloads(
        api: BroadstreetFake, tmp_path: Path) -> None:
    taken = api.seed("networks", "Network 0")  # someone else's network of the same name
    data = ex.hierarchy()
    data["advertisers"].append({"id": 900, "network_id": 1, "name": "Advertiser 0",
                                "web_home_url": "", "notes": None})  # a local twin
    ex.load(tmp_path, data)
    cfg = ex.write_config(tmp_path, api.url)
    out = sync(cfg, "--all")
    assert "failed" not in out.replace("0 failed", "")
    # dependency order: every level's creates come after the previous level's
    kinds = [p.rstrip("/").split("/")[-1] for m, p, _ in api.requests if m == "POST"]
    level_of = {ex.JOBS[j][0]: i for i, level in enumerate(ex.LEVELS) for j in level}
    assert [level_of[k] for k in kinds] == sorted(level_of[k] for k in kinds)
    # ids translated: each placement points at the remote ids of its parents
    for local in data["placements"]:
        remote = api.records["placements"][remote_of(tmp_path, "placements_out", local["id"])]
        for field, job in ex.JOBS["placements_out"][3].items():
            assert str(remote[field]) == remote_of(tmp_path, job, local[field])
    # names: the remote's "Network 0" is left alone; the two local twins are told apart
    assert [r["id"] for r in api.named("networks", "Network 0")] == [int(taken)]
    assert len(api.named("networks", "Network 0 (1)")) == 1
    net = remote_of(tmp_path, "networks_out", 1)
    twins = sorted(r["name"] for r in api.records["advertisers"].values()
                   if r["network_id"] == int(net) and r["name"].startswith("Advertiser 0"))
    assert twins == ["Advertiser 0", "Advertiser 0 (1)"]
    # clean payloads: trimmed, empty and null left out, no key field
    adv = api.records["advertisers"][remote_of(tmp_path, "advertisers_out", 4)]
    assert adv["notes"] == "note 0" and "web_home_url" not in adv and adv["id"] != 2
    network = api.records["networks"][net]
    assert network["web_home_url"] == "https://n0.example" and "notes" not in network
    assert not api.duplicates()
    assert {s for *_, s in ex.id_map(tmp_path)} == {"synced"}

    before = len(api.writes())
    sync(cfg, "--all")
    assert len(api.writes()) == before, "a second run must send nothing"

    ex.execute(tmp_path, "UPDATE advertisers SET notes = 'changed' WHERE id = 4")
    out = sync(cfg, "--all")
    assert api.writes()[before:] == [("PUT", f"/api/1/networks/{net}/advertisers/"
                                             f"{remote_of(tmp_path, 'advertisers_out', 4)}")]
    assert "1 updated" in out and adv["notes"] == "changed"


def test_a_record_whose_parent_is_not_synced_is_deferred_then_sent(
        api: BroadstreetFake, tmp_path: Path) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North"}],
                       "advertisers": [{"id": 2, "network_id": 1, "name": "Early"}]})
    cfg = ex.write_config(tmp_path, api.url)
    out = sync(cfg, "advertisers_out")  # its upstream has not run yet
    assert "1 skipped" in out and not api.writes()
    with sqlite3.connect(ex.database(tmp_path)) as db:
        errors = db.execute("SELECT error_type, error_code FROM sync_errors").fetchall()
        state = db.execute("SELECT state FROM id_map WHERE job = 'advertisers_out'").fetchall()
    assert errors == [("conflict", "reference_pending")] and state == [("deferred",)]
    sync(cfg, "--all")
    assert api.named("advertisers", "Early")[0]["network_id"] == int(
        remote_of(tmp_path, "networks_out", 1))
    assert {s for *_, s in ex.id_map(tmp_path)} == {"synced"}


def test_a_create_whose_connection_dies_is_looked_up_not_resent(
        api: BroadstreetFake, tmp_path: Path) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North"}, {"id": 2, "name": "South"}]})
    cfg = ex.write_config(tmp_path, api.url)
    api.drop_after_create_next()
    out = sync(cfg, "networks_out")
    assert "2 inserted" in out
    assert not api.duplicates() and len(api.records["networks"]) == 2
    assert [s for *_, s in ex.id_map(tmp_path)] == ["synced", "synced"]


def test_a_transient_failure_is_retried_with_the_same_idempotency_key(
        api: BroadstreetFake, tmp_path: Path) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North"}]})
    cfg = ex.write_config(tmp_path, api.url)
    api.fail_next(1, status=429, retry_after=0.1, method="POST")
    api.fail_next(1, status=503, method="POST")
    sync(cfg, "networks_out")
    assert len(api.named("networks", "North")) == 1


@pytest.mark.parametrize("policy, expected", [("local", "mine"), ("remote", "theirs")])
def test_changed_on_both_sides(api: BroadstreetFake, tmp_path: Path, policy: str,
                               expected: str) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North", "notes": "first"}]})
    cfg = ex.write_config(tmp_path, api.url, target_extra=f'conflict = "{policy}"')
    sync(cfg, "networks_out")
    remote = api.records["networks"][remote_of(tmp_path, "networks_out", 1)]
    remote["notes"] = "theirs"
    ex.execute(tmp_path, "UPDATE networks SET notes = 'mine' WHERE id = 1")
    sync(cfg, "networks_out")
    assert remote["notes"] == expected
    before = len(api.writes())
    sync(cfg, "networks_out")
    assert len(api.writes()) == before


def test_review_puts_the_pair_in_sync_conflicts(api: BroadstreetFake, tmp_path: Path) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North", "notes": "first"}]})
    cfg = ex.write_config(tmp_path, api.url, target_extra='conflict = "review"')
    sync(cfg, "networks_out")
    remote = api.records["networks"][remote_of(tmp_path, "networks_out", 1)]
    remote["notes"] = "theirs"
    ex.execute(tmp_path, "UPDATE networks SET notes = 'mine' WHERE id = 1")
    out = sync(cfg, "networks_out")
    sync(cfg, "networks_out")
    assert "1 skipped" in out and remote["notes"] == "theirs"
    rows = ex.execute(tmp_path, "SELECT job, local_key, remote_id, status, local_record, "
                      "remote_record FROM sync_conflicts")
    assert len(rows) == 1 and rows[0][:4] == ("networks_out", "1", str(remote["id"]), "open")
    assert '"mine"' in rows[0][4] and '"theirs"' in rows[0][5]


def test_a_delete_whose_path_needs_record_fields_renders_from_the_id_map(
        api: BroadstreetFake, tmp_path: Path) -> None:
    ex.load(tmp_path, {"networks": [{"id": 1, "name": "North"}],
                       "advertisers": [{"id": 2, "network_id": 1, "name": "Stays"},
                                       {"id": 3, "network_id": 1, "name": "Goes"}]})
    cfg = ex.write_config(tmp_path, api.url)
    path = "/networks/{network_id}/advertisers"
    text = cfg.read_text().replace(
        "[jobs.advertisers_out]\n", "[jobs.advertisers_out]\non_missing = \"delete\"\n").replace(
        f'update = {{ method = "PUT", path = "{path}/{{remote_id}}" }}',
        f'update = {{ method = "PUT", path = "{path}/{{remote_id}}" }}\n'
        f'delete = {{ method = "DELETE", path = "{path}/{{remote_id}}" }}')
    cfg.write_text(text)
    sync(cfg, "--all")
    net, goes = remote_of(tmp_path, "networks_out", 1), remote_of(tmp_path, "advertisers_out", 3)
    ex.execute(tmp_path, "DELETE FROM advertisers WHERE id = 3")
    sync(cfg, "advertisers_out")
    assert api.writes()[-1] == ("DELETE", f"/api/1/networks/{net}/advertisers/{goes}")
    assert goes not in api.records["advertisers"] and len(api.records["advertisers"]) == 1
    states = dict((k, s) for j, k, _, s in ex.id_map(tmp_path) if j == "advertisers_out")
    assert states == {"2": "synced", "3": "deleted"}
