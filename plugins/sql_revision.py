"""The SQL target's revision of its table (``Target.revision``).

A run that finds the revision its job's last run left reads nothing, so a revision is
only told when it is the target's own doing: since the table was opened, the rows
changed by exactly what this target inserted and deleted, and no other job wrote. A
table someone else wrote meanwhile (another job, a hand-made insert or delete) has no
revision to trust, and the next run reads.
"""

from __future__ import annotations

from typing import Any

from syncd.adapters import SqlSession


class TableRevision:
    """Rows, largest ``id`` and each job's writes (``note_write``) of one table."""

    def __init__(self, sql: SqlSession, table: str, job: str) -> None:
        self.sql, self.table, self.job = sql, table, job
        self.opened = self.now()
        self.added = 0  # rows this target inserted, less those it deleted
        self.writes = 0  # its ``note_write``s

    def now(self) -> dict[str, Any]:
        q, table = self.sql.quote, self.sql.quote(self.table)
        rows, last = self.sql.execute(  # apart, each is answered from an index alone
            f"SELECT (SELECT COUNT(*) FROM {table}), (SELECT MAX({q('id')}) FROM {table})"
        ).fetchone()
        return {"rows": int(rows), "last_id": last, "writes": self.sql.writes(self.table)}

    def wrote(self, inserted: int = 0, deleted: int = 0) -> None:
        """Count a write of this target (inside its transaction)."""
        self.sql.note_write(self.table)
        self.writes += 1
        self.added += inserted - deleted

    def current(self) -> dict[str, Any] | None:
        """The revision now, or None if anything but this target wrote since it opened."""
        now = self.now()
        expected = dict(self.opened["writes"])
        if self.writes:
            expected[self.job] = expected.get(self.job, 0) + self.writes
        alone = now["writes"] == expected and now["rows"] == self.opened["rows"] + self.added
        return now if alone else None
