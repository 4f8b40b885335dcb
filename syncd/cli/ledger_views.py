"""How ``syncd idmap`` and ``syncd conflicts`` word the ledger (``syncd.engine.ledger``)."""

from __future__ import annotations

from typing import Any

from syncd.cli.views import _when

ERROR_WIDTH = 70  # characters of a last error shown in the table; --json shows it whole
NEXT = {True: "next run", False: "needs a person", None: "-"}


def idmap_lines(page: dict[str, Any]) -> list[str]:
    """A summary line by state, then the rows as aligned columns."""
    counts = page["counts"]
    total = sum(counts.values())
    lines = [f"job {page['job']}: {total} records"
             + (": " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if total else "")]
    entries = page["entries"]
    if not entries:
        lines.append("no records" if not total else "no records on this page")
        return lines
    rows = [["local key", "remote id", "state", "attempts", "next", "last error"]]
    for e in entries:
        nxt = NEXT[e["transient"]]
        if e["conflictId"] is not None:
            nxt = f"conflict {e['conflictId']}"
        error = (e["lastError"] or "").replace("\n", " ")
        if len(error) > ERROR_WIDTH:
            error = error[:ERROR_WIDTH - 1] + "…"
        rows.append([e["localKey"], e["remoteId"] or "-", e["state"], str(e["attempts"]),
                     nxt, error])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.rjust(w) if i == 3 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def conflict_lines(c: dict[str, Any]) -> list[str]:
    """One conflict: who, when, and each field where the two versions differ."""
    state = c["status"] if not c["resolution"] else f"resolved: kept {c['resolution']}"
    lines = [f"conflict {c['id']}  job {c['job']}  key {c['localKey']}  remote id "
             f"{c['remoteId'] or '-'}  {state}  seen {_when(c['updatedAt'] or c['createdAt'])}"]
    local, remote = c["localRecord"] or {}, c["remoteRecord"] or {}
    if not isinstance(local, dict) or not isinstance(remote, dict):
        return [*lines, f"  local:  {local}", f"  remote: {remote}"]
    names = [*local, *(k for k in remote if k not in local)]
    width = max((len(n) for n in names), default=0)
    differ = [n for n in names if local.get(n) != remote.get(n)]
    for name in differ:
        lines.append(f"  {name:<{width}}  local {_shown(local, name)}  |  remote "
                     f"{_shown(remote, name)}")
    if not differ:
        lines.append("  the two versions hold the same values")
    if c["status"] == "open":
        lines.append(f"  resolve: syncd resolve {c['id']} --keep local|remote")
    return lines


def _shown(record: dict[str, Any], name: str) -> str:
    return repr(record[name]) if name in record else "(absent)"
