"""The fleet's queries: the run queue, schedule ticks and the daemons' heartbeats.

PostgreSQL only: a claim is ``SELECT … FOR UPDATE SKIP LOCKED`` on the oldest claimable
run, so daemons polling at once each get a different run and never wait on each other.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.config.fleet import FleetConfig
from syncd.errors import ConfigError, RunConflict
from syncd.store import Store
from syncd.store.claims import holder_is_gone
from syncd.store.models import FleetDaemon, ScheduleTick, SyncRun, utcnow
from syncd.store.orm import pw
from syncd.terms import UNFINISHED

CHANNEL = "syncd_runs"  # NOTIFY'd when a run becomes claimable


def check_fleet_store(store: Store, path: Path, fleet: FleetConfig) -> None:
    """A fleet needs PostgreSQL; its sessions drop a transaction idle for a whole lease.

    A daemon frozen (SIGSTOP, a VM paused) in the middle of a batch keeps its row locks;
    the server ends that session after ``lease_seconds`` so another daemon can take the
    run over, and the frozen one's batch rolls back when it wakes.
    """
    if store.dialect != "postgres":
        raise ConfigError(path, "fleet.enabled", "a fleet needs a PostgreSQL database in "
                          "[daemon] database (postgresql://…)")
    db: Any = store.db
    timeout_ms = int(fleet.lease_seconds * 1000)
    db.connect_params["options"] = f"-c idle_in_transaction_session_timeout={timeout_ms}"
    store.close()  # the next connection of each thread gets the option
    db.connect(reuse_if_open=True)


class FleetStore:
    """Queue, ticks and heartbeats, for one daemon (``store.claims`` names it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.claims = store.claims

    # -- the run queue ------------------------------------------------------------------

    def enqueue(self, *, job: str, trigger: str, source_type: str, identifier: str,
                spec: Mapping[str, Any] | None, device: Mapping[str, Any] | None,
                resume: bool, tick: datetime | None = None) -> int | None:
        """A claimable run (or the unfinished one of the same job and source).

        With ``tick``, the schedule's fire at that time is taken for the fleet in the
        same transaction; None when another daemon took it first.
        """
        with self.store.db.atomic():
            if tick is not None:
                try:
                    with self.store.db.atomic():
                        ScheduleTick.create(job=job, fire_time=tick, host=self.claims.host)
                except pw.IntegrityError:
                    return None
            run_id = self._unfinished(job, identifier) if resume else None
            if run_id is None:
                run_id = SyncRun.create(
                    job=job, trigger=trigger, status="pending", source_type=source_type,
                    source_identifier=identifier, host=self.claims.host,
                    job_spec=json.dumps(spec) if spec else None,
                    device=json.dumps(device) if device else None).id
            if tick is not None:
                (ScheduleTick.update({ScheduleTick.sync_run_id: run_id})
                 .where(ScheduleTick.job == job, ScheduleTick.fire_time == tick).execute())
            self.store.db.execute_sql(f"NOTIFY {CHANNEL}")
        return run_id

    def take_tick(self, name: str, tick: datetime) -> bool:
        """For fleet-wide chores (retrying failed runs, cleanup): True for the one daemon
        that takes this tick."""
        try:
            with self.store.db.atomic():
                ScheduleTick.create(job=name, fire_time=tick, host=self.claims.host)
        except pw.IntegrityError:
            return False
        return True

    def _unfinished(self, job: str, identifier: str) -> int | None:
        """The unfinished run of this job and source, left claimable; RunConflict when a
        live daemon executes it."""
        run = self.store.find_unfinished(job, identifier)
        if run is None:
            return None
        holder = self.claims.holder_of(run)
        if holder is not None or (run.claimed_by == self.claims.holder
                                  and run.lease_until is not None):
            raise RunConflict(f"run {run.id} of job {job!r} is being executed by "
                              f"{holder or self.claims.holder}")
        return int(run.id)

    def claim_next(self, jobs: Collection[str], skip: Collection[int] = ()
                   ) -> SyncRun | None:
        """Claim the oldest run no live daemon holds and this host may run: one of its
        ``jobs`` (hosts may have different configs) or an ad-hoc run."""
        now = utcnow()
        free = (SyncRun.claimed_by.is_null() | SyncRun.lease_until.is_null()
                | (SyncRun.lease_until < now))
        allowed = SyncRun.affinity.is_null() | (SyncRun.affinity == self.claims.host)
        known = SyncRun.job_spec.is_null(False)
        if jobs:
            known = known | SyncRun.job.in_(list(jobs))
        query = (SyncRun.select(SyncRun.id)
                 .where(SyncRun.status.in_(UNFINISHED), free, allowed, known)
                 .order_by(SyncRun.id).limit(1).for_update(skip_locked=True))
        if skip:
            query = query.where(SyncRun.id.not_in(list(skip)))
        with self.store.db.atomic():
            row = query.first()
            if row is None:
                return None
            (SyncRun.update(self.claims.fresh()).where(SyncRun.id == row.id).execute())
        return SyncRun.get_by_id(row.id)

    def give_back(self, run_id: int) -> None:
        """A claimed run this daemon cannot start now: claimable again at once."""
        (SyncRun.update({SyncRun.lease_until: None})
         .where(SyncRun.id == run_id, SyncRun.claimed_by == self.claims.holder).execute())

    def free_orphans(self) -> list[int]:
        """Unfinished runs held by a process of this host that no longer exists (this
        daemon before a restart): claimable at once instead of after their lease."""
        freed = []
        held = (SyncRun.select(SyncRun.id, SyncRun.claimed_by)
                .where(SyncRun.status.in_(UNFINISHED), SyncRun.lease_until.is_null(False),
                       SyncRun.claimed_by.startswith(f"{self.claims.host}:")))
        for run in held:
            if holder_is_gone(str(run.claimed_by), self.claims.host):
                (SyncRun.update({SyncRun.lease_until: None})
                 .where(SyncRun.id == run.id, SyncRun.claimed_by == run.claimed_by).execute())
                freed.append(run.id)
        return freed

    def status_of(self, run_id: int) -> str | None:
        run = SyncRun.select(SyncRun.status).where(SyncRun.id == run_id).first()
        return None if run is None else str(run.status)

    # -- heartbeats --------------------------------------------------------------------

    def beat(self, version: str, started: datetime) -> None:
        """This daemon is alive (one row per host, the newest process wins it)."""
        now = utcnow()
        (FleetDaemon.insert(host=self.claims.host, holder=self.claims.holder, version=version,
                            started_at=started, last_seen=now)
         .on_conflict(conflict_target=[FleetDaemon.host],
                      update={FleetDaemon.holder: self.claims.holder,
                              FleetDaemon.version: version,
                              FleetDaemon.started_at: started, FleetDaemon.last_seen: now})
         .execute())

    def leave(self) -> None:
        FleetDaemon.delete().where(FleetDaemon.host == self.claims.host,
                                   FleetDaemon.holder == self.claims.holder).execute()

    def peers(self, within_s: float) -> list[FleetDaemon]:
        """Daemons whose heartbeat is at most ``within_s`` old, this one included."""
        since = utcnow() - timedelta(seconds=within_s)
        return list(FleetDaemon.select().where(FleetDaemon.last_seen >= since)
                    .order_by(FleetDaemon.host))

    def stats_by_host(self) -> dict[str, dict[str, int]]:
        """Runs by the host that executed (or executes) them, and status; unclaimed
        runs (queued) under ``""``."""
        rows = (SyncRun.select(SyncRun.claimed_by, SyncRun.status, pw.fn.COUNT(SyncRun.id))
                .group_by(SyncRun.claimed_by, SyncRun.status).tuples())
        hosts: dict[str, dict[str, int]] = {}
        row: Any
        for row in rows:
            host = str(row[0] or "").rpartition(":")[0]
            bucket = hosts.setdefault(host, {"total": 0})
            bucket[str(row[1])] = bucket.get(str(row[1]), 0) + int(row[2])
            bucket["total"] += int(row[2])
        return hosts

    def running_by_host(self) -> dict[str, int]:
        """Runs executing now, by the host holding them (live leases only)."""
        rows = (SyncRun.select(SyncRun.claimed_by, pw.fn.COUNT(SyncRun.id))
                .where(SyncRun.status.in_(UNFINISHED), SyncRun.lease_until >= utcnow())
                .group_by(SyncRun.claimed_by).tuples())
        counts: dict[str, int] = {}
        row: Any
        for row in rows:
            holder, count = row[0], row[1]
            host = str(holder).rpartition(":")[0]
            counts[host] = counts.get(host, 0) + int(count)
        return counts
