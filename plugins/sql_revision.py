"""The SQL target's revision of its table (``Target.revision``).

A run that finds the revision its job's last run left reads nothing, so the revision
must change with any write into the table: each job's count of writes
(``note_write``) tells syncd's own writers, the row count and the largest ``id`` a row
inserted or deleted by hand. A run tells one only if no other job wrote the table while
it ran (a row it wrote may have been overwritten), and only if it touched a
twentieth of the table or more: counting the rows scans the table on PostgreSQL and
MariaDB (0.11 s per million rows), more than reading a small file again costs.
"""

from __future__ import annotations

from typing import Any

from syncd.adapters import SqlSession

#: a run that saw fewer rows than the table's largest id / this leaves no revision
TOUCHED_SHARE = 20


class TableRevision:
    """Each job's writes, the rows and the largest ``id`` of one table."""

    def __init__(self, sql: SqlSession, table: str, job: str) -> None:
        self.sql, self.table, self.job = sql, table, job
        self.opened = sql.writes(table)  # each job's writes when the target opened
        self.writes = 0  # this target's ``note_write``s
        self.seen = 0  # rows handed to this target's ``write``
        self.batch_writes = 0  # …of them, by the batch written last

    def mark_batch(self) -> None:
        """A batch's write begins."""
        self.batch_writes = 0

    def wrote(self) -> None:
        """Count a write of this target (inside its transaction)."""
        self.sql.note_write(self.table)
        self.writes += 1
        self.batch_writes += 1

    def rolled_back(self) -> None:
        """The last batch's transaction was rolled back, with its counts."""
        self.writes -= self.batch_writes
        self.batch_writes = 0

    def current(self) -> dict[str, Any] | None:
        """The revision now; None if another job wrote since the target opened, or the
        table is too large for what this target saw to be worth counting."""
        writes = self.sql.writes(self.table)
        expected = dict(self.opened)
        if self.writes:
            expected[self.job] = expected.get(self.job, 0) + self.writes
        if writes != expected:
            return None
        q, table = self.sql.quote, self.sql.quote(self.table)
        last = self.sql.execute(f"SELECT MAX({q('id')}) FROM {table}").fetchone()[0]
        if self.seen and self.seen * TOUCHED_SHARE < (last or 0):
            return None
        rows = self.sql.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return {"rows": int(rows), "last_id": last, "writes": writes}
