"""Reading only the lines that changed since the job's last run.

A run into a target its job's last completed run left as it is (the same revision,
``unchanged``) compares each line's digest with the same line's in that run's
snapshot (``line_snapshot``) and parses only the lines that differ, the lines past
the old end, and the lines that wrote nothing last time (blank, refused, a repeated
key: their errors are reported again). The others are counted unchanged unread: the
same bytes, read the same way (``LineDigests.layout``) by the same job, give the same
record, and the target holds it.

One thing a changed line can do that reading it alone would miss: repeat the key of
an unchanged line, which a full read reports as a duplicate on whichever comes
second. Before writing, the run therefore reads the changed lines' keys once and
looks them up among the unchanged lines' key digests; the lines it finds are read
too, and the run's duplicate check tells which comes first. A run where more than a
quarter of the lines changed (lines added or removed in the middle shift all after
them) reads the file whole.

A job with ``on_missing`` other than ``keep`` marks or deletes what left the file,
which takes every key of the file. It reads only changed lines when no key left: each
old key of a changed line is some changed line's key now, no line was cut from the
end, and its last run found every record (with a failed one, it removed nothing). The
run then has nothing to remove, and does not read the file again for its keys.
"""

from __future__ import annotations

import contextlib
import json
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.adapters import Batch, LineDigests, Source
from syncd.engine.line_plan import LinePlan
from syncd.engine.line_snapshot import (
    Snapshot,
    SnapshotWriter,
    Torn,
    fixed_blocks,
    key_digests,
)
from syncd.engine.screening import drop_keyless

if TYPE_CHECKING:
    from syncd.engine.targets import Writer
    from syncd.store import Store

MAX_SHARE = 4  # more than 1/MAX_SHARE of the lines changed: read the file whole
MAX_LINES = 500_000  # more changed lines than this: read whole (positions are in memory)
KEEP_LINES = 50_000  # changed lines whose batches are kept from reading their keys
MAX_REPEATED = 1000  # unchanged lines whose key a changed line repeats, read too


def plan(store: Store, job: str, source: Any, target: Writer, state_dir: Path | None,
         digest: str | None, config: str | None, positions: Sequence[int],
         on_missing: str, fields: Sequence[str], batch_rows: int) -> LinePlan | None:
    """The run's line plan: None when it leaves no snapshot (see the module's doc)."""
    if digest is None or config is None or state_dir is None or not positions \
            or not isinstance(source, Source):
        return None
    digests = source.line_digests()
    if digests is None:
        return None
    meta = {"config": config, "layout": digests.layout, "first_line": digests.first_line}
    try:
        writer = SnapshotWriter(state_dir, job, meta)
    except OSError:  # (a cache: the run reads whole, and leaves none)
        return None
    try:
        old = _usable(store, job, target, state_dir, meta, on_missing)
        if old is None:  # its lines are digested as it reads (maybe by its reader)
            return LinePlan(writer, digests.first_line, positions, lines=digests)
        wanted = _changed(writer, digests, old)
    except (OSError, MultiLine):
        writer.discard()
        return None
    if wanted is not None:
        read = _read_keys(source, wanted, positions, fields, batch_rows)
        repeated = _repeated(old, read.keys, wanted, writer.count, on_missing != "keep")
        if repeated is not None:
            if repeated:  # (rare) read too, so the batches read are not all
                wanted, read.kept = array("Q", sorted({*wanted, *repeated})), None
            return LinePlan(writer, digests.first_line, positions, wanted, old, read.kept)
    return LinePlan(writer, digests.first_line, positions)  # a full read


def carry(state_dir: Path, job: str, last: int, run_id: int) -> None:
    """A run that read nothing (the same content as ``last``) takes over its snapshot."""
    old = Snapshot.load(state_dir, job)
    if old is not None and old.meta.get("run") == last:
        with contextlib.suppress(OSError):
            old.carry(run_id)


class MultiLine(Exception):
    """A line may not be a whole record: no line digests."""


def _usable(store: Store, job: str, target: Writer, state_dir: Path,
            meta: dict[str, Any], on_missing: str) -> Snapshot | None:
    """The snapshot of the job's last completed run, if the target is as it left it and
    this run reads its lines as it did (and, for ``on_missing``, that run found every
    record: with a failed one it removed nothing, and the table may hold more)."""
    old = Snapshot.load(state_dir, job)
    if old is None or any(old.meta.get(k) != v for k, v in meta.items()):
        return None
    last = store.last_completed(job)
    if last is None or last.id != old.meta.get("run") or not last.target_mark \
            or (on_missing != "keep" and last.items_failed):
        return None
    revision = getattr(target, "revision", lambda: None)()
    left = json.loads(last.target_mark).get("revision")
    if revision is None or json.loads(json.dumps(revision, default=str)) != left:
        return None
    return old


def _changed(writer: SnapshotWriter, digests: LineDigests, old: Snapshot) -> array | None:
    """Write every line's digest; return the positions that differ from ``old``'s, or
    None (a torn ``old``, or too many changed)."""
    wanted: array | None = array("Q")  # 8 bytes a line (a list took 36)
    old_lines, old_keys = old.blocks("lines"), old.blocks("keys")
    base = 0
    for new in fixed_blocks(digests.blocks, None):
        if new is None:
            raise MultiLine
        writer.line_block(new)
        n = len(new)
        if wanted is not None:
            try:
                lines, keys = next(old_lines, None), next(old_keys, None)
            except Torn:
                wanted = None
                continue
            if lines is None or keys is None:
                wanted.extend(range(base, base + n))
            else:
                m = min(n, len(lines))
                if new[:m] != lines[:m] or 0 in keys[:m]:
                    wanted.extend(base + i for i, (a, b, k) in enumerate(
                        zip(new[:m], lines[:m], keys[:m], strict=True)) if a != b or k == 0)
                wanted.extend(range(base + m, base + n))
            if len(wanted) > min(MAX_LINES, max(base + n, old.count) // MAX_SHARE):
                wanted = None
        base += n
    if wanted is not None:
        try:
            for _ in old_lines:  # to their end: a torn file raises
                pass
            for _ in old_keys:
                pass
        except Torn:
            return None
    return wanted


class _Read:
    """The changed lines' keys, and their batches when they are few enough to keep."""

    def __init__(self) -> None:
        self.keys: set[int] = set()
        self.kept: list[Batch] | None = []


def _read_keys(source: Source, wanted: array, positions: Sequence[int],
               fields: Sequence[str], batch_rows: int) -> _Read:
    read = _Read()
    if len(wanted) > KEEP_LINES:
        read.kept = None
    for batch in source.read_lines(fields, wanted, batch_rows):
        rows, _ = drop_keyless(batch.rows, batch.items, [], positions, "")
        read.keys.update(key_digests(rows, positions))
        if read.kept is not None:
            read.kept.append(batch)
    return read


def _repeated(old: Snapshot, found: set[int], wanted: array, count: int, removing: bool
              ) -> list[int] | None:
    """The unchanged lines whose key a changed line has (``found``): read too, the run
    tells which comes first, as a full read would. None when there are too many, or,
    ``removing`` (``on_missing``), when a key the last run wrote left the file: the old
    key of a changed line that no changed line has now, or of a line past the new end.
    One pass over the last snapshot's keys."""
    base, limit = 0, min(old.count, count)
    repeated: list[int] = []
    try:
        for block in old.blocks("keys"):
            end = base + len(block)
            # a changed line's own old key is no repeat (the keys were unique)
            own = {block[p - base] for p in wanted[bisect_left(wanted, base):
                                                    bisect_left(wanted, end)]}
            if removing:
                left = own.union(block[max(0, count - base):])  # (past the new end)
                left.discard(0)
                if left - found:
                    return None
            hits = found.intersection(block[:max(0, min(len(block), limit - base))])
            repeated.extend(base + block.index(digest) for digest in hits - own)
            if len(repeated) > MAX_REPEATED:
                return None
            base = end
    except Torn:
        return None  # (read whole)
    return repeated
