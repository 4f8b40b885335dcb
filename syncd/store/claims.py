"""Run claims: which daemon executes a run, and until when it has to prove it is alive.

A file lock keeps runs apart on one host; a claim in ``sync_runs`` keeps them apart
for every process that shares the database. A daemon writes ``claimed_by`` and
``lease_until`` when it creates or takes over a run and renews the lease while it
works. Another daemon may take the run over only once the lease has expired, or at
once when the holder is a process on this same host that no longer exists (a crash
followed by a restart must not wait out the lease).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from syncd.store.models import SyncRun, utcnow
from syncd.store.orm import pw

DEFAULT_LEASE_S = 30.0


def this_process(host: str | None = None) -> str:
    """The holder name of this process: ``host:pid`` (``host``: ``[daemon] host``)."""
    return f"{host or socket.gethostname()}:{os.getpid()}"


def host_of(holder: str) -> str:
    """The host part of a holder name."""
    return holder.rpartition(":")[0]


def holder_is_gone(holder: str, here: str | None = None) -> bool:
    """True when ``holder`` names a process of this machine (its host name, or ``here``,
    this daemon's ``[daemon] host``) that has exited."""
    host, _, pid = holder.rpartition(":")
    if host not in (socket.gethostname(), here) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Claims:
    """Claim, renew and release runs on behalf of one holder."""

    def __init__(self, holder: str | None = None, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.holder = holder or this_process()
        self.host = host_of(self.holder)
        self.lease_s = lease_s

    def lease_end(self) -> datetime:
        """Rounded up to a whole second: MySQL's DATETIME keeps no fraction."""
        end = utcnow() + timedelta(seconds=self.lease_s)
        return end.replace(microsecond=0) + timedelta(seconds=1)

    def fresh(self) -> dict[pw.Field, object]:
        """The columns of a run this holder creates: claimed from its first instant."""
        return {SyncRun.claimed_by: self.holder, SyncRun.lease_until: self.lease_end()}

    def holder_of(self, run: SyncRun) -> str | None:
        """Who holds ``run`` right now (None when nobody, or the holder is this one)."""
        if run.claimed_by in (None, self.holder) or run.lease_until is None:
            return None
        if run.lease_until < utcnow() or holder_is_gone(run.claimed_by, self.host):
            return None
        return str(run.claimed_by)

    def claim(self, run_id: int) -> str | None:
        """Take ``run_id``; None on success, else the live holder that keeps it.

        Compare-and-swap on the columns read: of two daemons racing for an expired
        claim, exactly one update matches.
        """
        run = SyncRun.get_or_none(SyncRun.id == run_id)
        if run is None:
            return "nobody: the run does not exist"
        holder = self.holder_of(run)
        if holder is not None:
            return holder
        where = [SyncRun.id == run_id]
        where.append(SyncRun.claimed_by.is_null() if run.claimed_by is None
                     else SyncRun.claimed_by == run.claimed_by)
        where.append(SyncRun.lease_until.is_null() if run.lease_until is None
                     else SyncRun.lease_until == run.lease_until)
        SyncRun.update(self.fresh()).where(*where).execute()
        # read back rather than trust the row count: MySQL counts changed rows, not matched
        latest = SyncRun.get_by_id(run_id)
        return None if latest.claimed_by == self.holder else str(latest.claimed_by)

    def renew(self, run_ids: Iterable[int]) -> set[int]:
        """Extend the leases of ``run_ids``; returns those this holder no longer has."""
        ids = list(run_ids)
        if not ids:
            return set()
        (SyncRun.update({SyncRun.lease_until: self.lease_end()})
         .where(SyncRun.id.in_(ids), SyncRun.claimed_by == self.holder).execute())
        held = {r.id for r in SyncRun.select(SyncRun.id)
                .where(SyncRun.id.in_(ids), SyncRun.claimed_by == self.holder)}
        return set(ids) - held

    def release(self, run_id: int) -> None:
        """End the lease; ``claimed_by`` stays as the record of who ran it last."""
        (SyncRun.update({SyncRun.lease_until: None})
         .where(SyncRun.id == run_id, SyncRun.claimed_by == self.holder).execute())
