"""Bidirectional pairs (SPEC §8): an import job and an export job on one table and key.

The import (a remote source into a store target) names its export with ``[jobs.X.pair]
job = "EXPORT"``. Its key field holds the remote id as read; here it becomes the local
key the export's id map holds for that remote id, so a record created locally and
exported is updated in place, never imported a second time. A record created on the
remote gets the local key ``new_key`` and is entered in the export's id map as synced,
so the export never sends it back.

Echoes are suppressed by one hash, ``id_map.pair_hash``: the fields both jobs share
(table columns the import writes and the export reads, the key left out), as last
written on either side. The export records it with each record it sends, the import
with each it takes in; a record whose shared fields equal it is an echo of the other
side's write, and neither job writes it. Nothing here knows the remote or the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from syncd.adapters import AsyncRecordTarget, RecordTarget, Row, Target
from syncd.errors import ConfigError
from syncd.store import idmap
from syncd.store.hashing import pair_hash

if TYPE_CHECKING:
    from syncd.engine.plan import JobPlan


@dataclass(frozen=True, slots=True)
class PairLink:
    """One side of a pair: the partner job and the shared fields of this side's records
    (position in the record, table column)."""

    partner: str
    role: Literal["import", "export"]
    shared: tuple[tuple[int, str], ...]
    key_position: int = 0  # import: the key field, holding the remote id as read
    new_key: str = "{remote_id}"

    def digest(self, record: Sequence[Any]) -> str:
        return pair_hash({column: record[i] for i, column in self.shared})


@dataclass(slots=True)
class Incoming:
    """An import batch after the pair: rows to write (keys translated), echoes dropped."""

    rows: list[Row]
    items: list[str]
    echoes: int
    taken: list[tuple[str, str, str]]  # (local key, remote id, pair hash) to agree on
    stale: list[Row]  # keys whose stored row the export changed: written even if "same"


def incoming(link: PairLink, rows: Sequence[Row], items: Sequence[str]) -> Incoming:
    """Translate remote ids to local keys; drop what the export itself sent."""
    p = link.key_position
    remote_ids = [str(row[p]).strip() for row in rows]
    known = idmap.by_remote(link.partner, sorted(set(remote_ids)))
    out = Incoming([], [], 0, [], [])
    for row, item, remote_id in zip(rows, items, remote_ids, strict=True):
        digest = link.digest(row)
        entry = known.get(remote_id)
        if entry is not None and entry.state == "synced" and entry.pair_hash == digest:
            out.echoes += 1  # as last written on either side: nothing new from the remote
            continue
        key = entry.local_key if entry is not None else link.new_key.format(
            remote_id=remote_id)
        translated = (*row[:p], key, *row[p + 1:])
        out.rows.append(translated)
        out.items.append(item)
        out.taken.append((key, remote_id, digest))
        if entry is not None:
            out.stale.append((key,))
    return out


def agree(partner: str, taken: Sequence[tuple[str, str, str]]) -> None:
    """The import wrote these records: the export's id map holds them as synced."""
    if taken:
        idmap.agree(partner, taken)


def link_pairs(plans: Mapping[str, JobPlan], path: Path | str) -> dict[str, JobPlan]:
    """Check every ``pair`` and give both of its jobs their ``PairLink``."""
    linked = dict(plans)
    for name, plan in plans.items():
        pair = plan.config.pair
        if pair is None:
            continue
        where = f"jobs.{name}.pair"
        export = plans.get(pair.job)
        if export is None or export.name == name:
            raise ConfigError(path, f"{where}.job", f"{pair.job!r} is not another job")
        if not issubclass(plan.target_cls, Target) or not plan.target_cls.capabilities.store:
            raise ConfigError(path, where, "the import of a pair writes into a table of the "
                              "store (a target such as sql)")
        if not issubclass(export.target_cls, RecordTarget | AsyncRecordTarget):
            raise ConfigError(path, f"{where}.job", f"{pair.job} does not export through an "
                              "id map (a target such as rest)")
        key = _key(plan)
        if len(key) != 1 or _key(export) != key:
            raise ConfigError(path, where, f"the import's key {list(key)} and the export's "
                              f"key {list(_key(export))} must be the same single field")
        if "{remote_id}" not in pair.new_key:
            raise ConfigError(path, f"{where}.new_key", "must contain {remote_id}")
        if any(p.config.pair and p.config.pair.job == pair.job and n != name
               for n, p in plans.items()):
            raise ConfigError(path, f"{where}.job", f"{pair.job} is paired twice")
        referenced = set(export.config.references)
        columns = [c for c in plan.columns if c not in key]
        by_column = {column: i for i, (field, column) in enumerate(
            zip(export.columns, export.fields, strict=True))
            if field not in referenced and field not in key}
        shared = [c for c in columns if c in by_column]
        if not shared:
            raise ConfigError(path, where, f"{name} and {pair.job} share no field but the key")
        linked[name] = replace(plan, pair=PairLink(
            pair.job, "import", tuple((plan.columns.index(c), c) for c in shared),
            key_position=plan.columns.index(key[0]), new_key=pair.new_key))
        linked[pair.job] = replace(export, pair=PairLink(
            name, "export", tuple((by_column[c], c) for c in shared)))
    return linked


def _key(plan: JobPlan) -> tuple[str, ...]:
    return tuple(getattr(plan.target_options, "key", ()) or ()) or (plan.columns[0],)
