"""A remote's rate limit across the fleet: the sliding window lives in PostgreSQL.

Every daemon reserves a request's start the way :class:`syncd.remote.limits.RateLimit`
does in one process — the next free slot of the window — but in one transaction under
an advisory lock per remote and on the database's clock, so N daemons together start
at most ``count`` requests in any ``period``. One short transaction per request: fine
for the rates remotes impose (tens per second), not meant for thousands.
"""

from __future__ import annotations

from syncd.remote import limits
from syncd.remote.limits import RateLimit
from syncd.store import Store
from syncd.store.models import RateSlot
from syncd.store.orm import pw

NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"


class FleetRateLimit(RateLimit):
    """At most ``count`` request starts in any ``period`` seconds, for every daemon."""

    def __init__(self, store: Store, remote: str, count: int, period: float) -> None:
        super().__init__(count, period)
        self.store, self.remote = store, remote

    def try_start(self) -> float | None:
        """The fleet's window first (waiting there is a negative number), then this
        process's pacing and pauses."""
        wait = self._reserve()
        return -wait if wait > 0 else super().try_start()

    def _reserve(self) -> float:
        """Take a slot of the shared window now, or say how long until one is free."""
        assert self.count is not None  # a fleet limit is made only for a given rate
        db = self.store.db
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))",
                           (f"syncd rate {self.remote}",))
            now = float(db.execute_sql(NOW).fetchone()[0])
            (RateSlot.delete().where(RateSlot.remote == self.remote,
                                     RateSlot.at <= now - self.period).execute())
            recent = [r.at for r in RateSlot.select(RateSlot.at)
                      .where(RateSlot.remote == self.remote)
                      .order_by(RateSlot.at.desc()).limit(self.count)]
            if len(recent) >= self.count:  # recent[-1]: the count-th latest start
                return max(recent[-1] + self.period - now, 0.001)
            RateSlot.create(remote=self.remote, at=now)
        return 0.0


def install(store: Store) -> None:
    """Make every remote's limit in this process a fleet-wide one."""
    if not isinstance(store.db, pw.PostgresqlDatabase):
        raise TypeError("a fleet-wide rate limit needs PostgreSQL")
    limits.factory = lambda remote, count, period: FleetRateLimit(store, remote, count,
                                                                  period)
    limits._SHARED.clear()
