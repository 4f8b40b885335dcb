"""Several daemons on one PostgreSQL store (SPEC §11): a run queue claimed with
``SKIP LOCKED``, leases renewed while a run works, schedules fired once per fleet, and
a heartbeat table listing the live daemons.

The database is the only coordinator: nothing here talks to another daemon directly.
"""

from syncd.fleet.affinity import Affinity
from syncd.fleet.member import Fleet

__all__ = ["Affinity", "Fleet"]
