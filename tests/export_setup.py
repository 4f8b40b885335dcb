"""The Broadstreet export of seed 002 as a user configures it: six SQL tables in the
store's SQLite file, six ``sql`` → ``rest`` jobs linked by ``references``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: job → (table, create path, answer's singular, references, extra columns)
JOBS: dict[str, tuple[str, str, str, dict[str, str], tuple[str, ...]]] = {
    "networks_out": ("networks", "/networks", "network", {}, ("web_home_url", "notes")),
    "advertisers_out": ("advertisers", "/networks/{network_id}/advertisers", "advertiser",
                        {"network_id": "networks_out"}, ("web_home_url", "notes")),
    "zones_out": ("zones", "/networks/{network_id}/zones", "zone",
                  {"network_id": "networks_out"}, ("alias",)),
    "advertisements_out": ("advertisements",
                           "/networks/{network_id}/advertisers/{advertiser_id}/advertisements",
                           "advertisement", {"network_id": "networks_out",
                                             "advertiser_id": "advertisers_out"}, ("type",)),
    "campaigns_out": ("campaigns", "/networks/{network_id}/advertisers/{advertiser_id}/campaigns",
                      "campaign", {"network_id": "networks_out",
                                   "advertiser_id": "advertisers_out"}, ("start_date",)),
    "placements_out": ("placements", "/networks/{network_id}/advertisers/{advertiser_id}"
                       "/campaigns/{campaign_id}/placements", "placement",
                       {"network_id": "networks_out", "advertiser_id": "advertisers_out",
                        "campaign_id": "campaigns_out", "advertisement_id": "advertisements_out",
                        "zone_id": "zones_out"}, ()),
}
LEVELS = [["networks_out"], ["advertisers_out", "zones_out"],
          ["advertisements_out", "campaigns_out"], ["placements_out"]]


def columns(job: str) -> list[str]:
    _, _, _, refs, extra = JOBS[job]
    return ["id", *refs, "name", *extra]


def write_config(root: Path, url: str, *, batch_rows: int = 50, remote_extra: str = "",
                 target_extra: str = "") -> Path:
    """``root/syncd.toml`` with its store (and the local tables) under ``root/state``."""
    lines = ["[daemon]", f"state_dir = {json.dumps(str(root / 'state'))}",
             'log_format = "json"', ""]
    for job, (_, path, singular, refs, _) in JOBS.items():
        table = JOBS[job][0]
        lines += [f"[jobs.{job}]", f"batch_rows = {batch_rows}",
                  f"[jobs.{job}.source]", 'type = "sql"', f'table = "{table}"',
                  f"[jobs.{job}.target]", 'type = "rest"', f"url = {json.dumps(url)}",
                  'key = ["id"]',
                  f'create = {{ method = "POST", path = "{path}" }}',
                  f'update = {{ method = "PUT", path = "{path}/{{remote_id}}" }}',
                  f'id_path = "{singular}.id"',
                  f'lookup = {{ path = "{path}", data_path = "{table}", match = ["name"] }}',
                  remote_extra, target_extra,
                  f"[jobs.{job}.mapping]"]
        lines += [f'{c} = "{c}"' for c in columns(job)]
        if refs:
            lines += [f"[jobs.{job}.references]"] + [f'{f} = "{u}"' for f, u in refs.items()]
        lines.append("")
    path = root / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def database(root: Path) -> Path:
    return root / "state" / "syncd.db"


def create_tables(root: Path) -> None:
    (root / "state").mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database(root)) as db:
        for job, (table, *_rest) in JOBS.items():
            cols = ", ".join(f"{c} TEXT" for c in columns(job)[1:])
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, {cols})")


def insert(root: Path, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    with sqlite3.connect(database(root)) as db:
        for row in rows:
            names = list(row)
            db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                       f"({', '.join('?' for _ in names)})", [row[n] for n in names])


def execute(root: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database(root)) as db:
        return list(db.execute(sql, params))


def hierarchy(networks: int = 2, per: int = 2) -> dict[str, list[dict[str, Any]]]:
    """A small local hierarchy: ``per`` children of each parent, names repeating."""
    data: dict[str, list[dict[str, Any]]] = {t[0]: [] for t in JOBS.values()}
    ids = iter(range(1, 100_000))
    for n in range(networks):
        net = next(ids)
        data["networks"].append({"id": net, "name": f"Network {n}",
                                 "web_home_url": f" https://n{n}.example ", "notes": ""})
        zones = []
        for z in range(per):
            zid = next(ids)
            zones.append(zid)
            data["zones"].append({"id": zid, "network_id": net, "name": f"Zone {z}",
                                  "alias": f"z{z}"})
        for a in range(per):
            adv = next(ids)
            data["advertisers"].append({"id": adv, "network_id": net,
                                        "name": f"Advertiser {a}", "web_home_url": "  ",
                                        "notes": f"  note {a}  "})
            ad = next(ids)
            data["advertisements"].append({"id": ad, "network_id": net, "advertiser_id": adv,
                                           "name": f"Ad {a}", "type": "image"})
            camp = next(ids)
            data["campaigns"].append({"id": camp, "network_id": net, "advertiser_id": adv,
                                      "name": f"Campaign {a}", "start_date": "2024-01-01"})
            for zid in zones:
                data["placements"].append({
                    "id": next(ids), "network_id": net, "advertiser_id": adv,
                    "campaign_id": camp, "advertisement_id": ad, "zone_id": zid,
                    "name": f"Placement {a}/{zid}"})
    return data


def load(root: Path, data: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    create_tables(root)
    for table, rows in data.items():
        insert(root, table, rows)


def id_map(root: Path) -> list[tuple[str, str, str | None, str]]:
    return [tuple(r) for r in execute(  # type: ignore[misc]
        root, "SELECT job, local_key, remote_id, state FROM id_map ORDER BY job, local_key")]
