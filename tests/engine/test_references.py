"""``[jobs.X.references]``: export order, cycles refused at load, ids translated, deferral."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import dependency_order, load_config, validate
from syncd.engine import references
from syncd.errors import ConfigError
from syncd.store import Store, idmap
from syncd.store.idmap import Settled


def _jobs(refs: dict[str, dict[str, str]]) -> dict[str, object]:
    return {"jobs": {name: {"mapping": {"id": "id"}, "references": r}
                     for name, r in refs.items()}}


def test_references_imply_depends_on_and_order_the_levels() -> None:
    config = validate(_jobs({"networks": {}, "advertisers": {"network_id": "networks"},
                             "zones": {"network_id": "networks"},
                             "placements": {"advertiser_id": "advertisers",
                                            "zone_id": "zones"}}))
    assert config.jobs["placements"].upstreams == ["advertisers", "zones"]
    assert dependency_order(config) == [["networks"], ["advertisers", "zones"], ["placements"]]


def test_a_reference_cycle_is_refused_at_load_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text("".join(
        f'[jobs.{a}]\n[jobs.{a}.mapping]\nid = "id"\n[jobs.{a}.references]\nx = "{b}"\n'
        for a, b in (("a", "b"), ("b", "a"))))
    with pytest.raises(ConfigError, match=r"cycle: (a → b → a|b → a → b)"):
        load_config(path)


def test_a_reference_to_an_unknown_job_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[jobs.a]\n[jobs.a.mapping]\nid = "id"\n[jobs.a.references]\n'
                    'network_id = "nope"\n')
    with pytest.raises(ConfigError, match=r"jobs\.a\.references\.network_id.*unknown job"):
        load_config(path)


def test_translation_uses_synced_remote_ids_and_defers_the_rest(store: Store) -> None:
    with store.atomic():
        idmap.stage("networks", [("1", "h", "r", None), ("2", "h", "r", None)])
        idmap.settle("networks", [Settled("1", "synced", "701", "h")])
    out = references.translate({"network_id": "networks"},
                               [{"network_id": 1}, {"network_id": "2"}, {"network_id": ""}])
    assert out.records[0]["network_id"] == "701"
    assert out.pending == {1: ["network_id=2 (networks)"]}  # pending upstream: not yet
    assert out.records[2]["network_id"] == ""  # no reference at all is not deferred
