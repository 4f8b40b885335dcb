"""Names and lookups of the REST target: what the remote already holds in a scope.

A scope is the lookup path rendered for a record (``/networks/7/advertisers``). Before a
batch's intents commit, each new record gets its final name: its own, or "Name (1)",
"Name (2)" … when the remote (or an earlier record of this run) holds that name. The
final name is recorded with the intent, so a resumed run looks for exactly what an
interrupted attempt may have created.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from syncd.adapters import Change

from .rest_payload import dig, render

Fetch = Callable[[str], Any]  # async: path → decoded JSON answer


@dataclasses.dataclass
class Names:
    """Per run: the names taken in each scope, and the remote records seen there."""

    fetch: Fetch
    path: str
    data_path: str
    match: Sequence[str]
    name_field: str
    mode: Literal["suffix", "adopt", "fail"]
    known: Callable[[Sequence[str]], set[str]]
    id_field: str = "id"
    renames: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    _seen: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    _taken: dict[str, set[str]] = dataclasses.field(default_factory=dict)

    async def listing(self, scope: str) -> list[dict[str, Any]]:
        """The remote records of a scope, as the remote answers now."""
        found = dig(await self.fetch(scope), self.data_path)
        return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []

    async def name(self, change: Change) -> Change:
        """``change`` with ``sent`` naming what it will be created as."""
        base = _text(change.record.get(self.name_field))
        if change.kind != "create" or not base:
            return change
        scope = render(self.path, change.record)
        taken = self._taken.setdefault(scope, set())
        previous = dict(change.sent or {})
        if previous.get("name") and previous.get("base") == base:
            taken.add(str(previous["name"]))  # an interrupted attempt's: kept as it was
            return change
        if scope not in self._seen:
            self._seen[scope] = await self.listing(scope)
        holders = [r for r in self._seen[scope] if _text(r.get(self.name_field)) == base]
        sent: dict[str, Any] = {"name": base, "base": base}
        if holders or base in taken:
            strangers = _strangers(holders, self.known, self.id_field)
            if strangers and self.mode == "adopt":
                sent["adopt"] = strangers[0]
            elif strangers and self.mode == "fail":
                sent["fail"] = True
            else:
                remote = {_text(r.get(self.name_field)) for r in self._seen[scope]}
                n = 1
                while f"{base} ({n})" in taken or f"{base} ({n})" in remote:
                    n += 1
                sent["name"] = f"{base} ({n})"
                self.renames.append((change.key, base, sent["name"]))
        taken.add(sent["name"])
        return dataclasses.replace(change, sent=sent)

    async def find(self, change: Change, body: Mapping[str, Any]) -> str | None:
        """The remote id of a record matching what ``change`` sends (by ``match``),
        that no other local record already maps to."""
        scope = render(self.path, change.record)
        wanted = {f: _text(body.get(f)) for f in self.match}
        hits = [r for r in await self.listing(scope)
                if all(_text(r.get(f)) == v for f, v in wanted.items())]
        strangers = _strangers(hits, self.known, self.id_field)
        return strangers[0] if strangers else None


def _strangers(records: list[dict[str, Any]], known: Callable[[Sequence[str]], set[str]],
               id_field: str) -> list[str]:
    """Ids of ``records`` that the job's id map does not hold."""
    ids = [str(r.get(id_field)) for r in records if r.get(id_field) is not None]
    mine = known(ids) if ids else set()
    return [i for i in ids if i not in mine]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
