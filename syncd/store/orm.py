"""peewee, as syncd imports it: without loading PyMySQL until MariaDB is used.

Every module of syncd and its plugins takes peewee from here (``from syncd.store.orm
import pw``; ruff's banned-api rule enforces it), so that the first import of peewee
in a process, whatever the command, is this one. Why: ``syncd.deferred``.
"""

from syncd.deferred import standing_in

with standing_in("pymysql"):
    import peewee as pw

__all__ = ["pw"]
