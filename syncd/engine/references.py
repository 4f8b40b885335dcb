"""References between export jobs: a field holding another job's local key is sent as
that record's remote id (``[jobs.X.references]``, SPEC §8).

The translation reads the upstream job's id map; a record whose referenced record has
no remote id yet cannot be sent and is *deferred*: counted skipped, reported as
``conflict``/``reference_pending``, and sent by a later run once its upstream synced.
Nothing here knows what kind of remote the records go to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.adapters import ItemError, unsent_id
from syncd.store import idmap


@dataclass(frozen=True, slots=True)
class Translated:
    """Records with their references replaced by remote ids; ``pending`` names, per
    record index, the references that have none yet."""

    records: list[dict[str, Any]]
    pending: dict[int, list[str]]


def _text(value: Any) -> str | None:
    """A reference value as the upstream id map keys it; None for "no reference"."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def translate(references: Mapping[str, str], records: Sequence[Mapping[str, Any]],
              assumed: Callable[[str], set[str]] | None = None) -> Translated:
    """Replace each referenced field's local key by the upstream record's remote id.

    ``assumed`` (a dry ``--all``): the keys an upstream job's dry run would create,
    given the remote id ``{new:JOB:KEY}`` instead of being deferred."""
    out = [dict(r) for r in records]
    pending: dict[int, list[str]] = {}
    for field, upstream in references.items():
        keys = sorted({k for r in records if (k := _text(r.get(field))) is not None})
        remote = idmap.remote_ids(upstream, keys) if keys else {}
        if assumed is not None:
            remote.update({k: unsent_id(upstream, k) for k in assumed(upstream)
                           if k not in remote})
        for i, record in enumerate(out):
            key = _text(record.get(field))
            if key is None:
                continue
            if key in remote:
                record[field] = remote[key]
            else:
                pending.setdefault(i, []).append(f"{field}={key} ({upstream})")
    return Translated(out, pending)


def deferral(item: str, waiting: list[str]) -> ItemError:
    """The notice of a record deferred until its references are synced."""
    return ItemError("conflict", "reference_pending",
                     f"deferred: no remote id yet for {', '.join(waiting)}; sent by a "
                     "later run once that record is synced", item, retryable=True)
