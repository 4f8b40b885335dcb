"""peewee without its server drivers until a server database is made: a light SQLite start.

peewee imports psycopg2/psycopg and PyMySQL (which loads ``cryptography``) as soon as they
are installed: tens of milliseconds that a SQLite store never uses. ``syncd/__init__.py``
installs ``hide_drivers_from_peewee()``, so the first ``import peewee`` in a process runs
with those modules hidden. Making a ``PostgresqlDatabase`` or ``MySQLDatabase`` (the store,
``playhouse.db_url``, a plugin, a test) then imports the real driver and binds it to the
names peewee looks up, exactly as peewee's own import would have.

Only a peewee whose driver names are known (``KNOWN_NAMES``) runs hidden; any other is
imported again with the drivers visible, as ``importlib.reload`` would.
"""

from __future__ import annotations

import functools
import sys
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

#: The driver modules peewee tries at import time, in its order.
DRIVERS = ("psycopg2cffi", "psycopg2", "psycopg", "pymysql", "MySQLdb")
#: What peewee 4 sets to None for a driver it did not find; bound below when needed.
KNOWN_NAMES = ("psycopg2", "Json_pg2", "psycopg", "Json_pg3", "Jsonb_pg3", "mysql",
               "Psycopg2Adapter", "Psycopg3Adapter", "PostgresqlDatabase", "MySQLDatabase")


class _HidingLoader:
    """Runs peewee's module code with the drivers absent, then hooks the server databases."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        hidden = [name for name in DRIVERS if name not in sys.modules]
        for name in hidden:  # None: `import name` raises ImportError
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            self.loader.exec_module(module)
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
        if all(hasattr(module, name) for name in KNOWN_NAMES):
            _bind_on_init(module)
        else:  # a peewee we do not know: let it import its drivers itself
            self.loader.exec_module(module)


class _PeeweeFinder:
    """A one-shot meta path finder: only the first import of ``peewee`` goes through it."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "peewee":
            return None
        remove_hook()
        spec = PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _HidingLoader(spec.loader)  # type: ignore[assignment]
        return spec


def hide_drivers_from_peewee() -> None:
    """Make the next first ``import peewee`` a light one (no-op if peewee is loaded)."""
    if "peewee" not in sys.modules and _PeeweeFinder not in sys.meta_path:
        sys.meta_path.insert(0, _PeeweeFinder)


def remove_hook() -> None:
    if _PeeweeFinder in sys.meta_path:
        sys.meta_path.remove(_PeeweeFinder)


def _bind_on_init(pw: Any) -> None:
    """Wrap the server databases' ``init`` so that the driver is bound before peewee
    picks its adapter (``init`` runs on construction and on a deferred ``db.init(...)``)."""
    for cls, bind in ((pw.PostgresqlDatabase, _bind_postgres), (pw.MySQLDatabase, _bind_mysql)):
        cls.init = _binding_first(cls.__dict__["init"], bind, pw)


def _binding_first(init: Any, bind: Any, pw: Any) -> Any:
    @functools.wraps(init)
    def bound(self: Any, *args: Any, **kwargs: Any) -> Any:
        bind(pw)
        return init(self, *args, **kwargs)

    return bound


def _bind_postgres(pw: Any) -> None:
    """peewee's own ``try: import psycopg2 …`` and ``try: import psycopg …``, done late."""
    if pw.psycopg2 is None and pw.psycopg is None:
        try:
            from psycopg2cffi import compat

            compat.register()
        except ImportError:
            pass
        try:
            import psycopg2
            from psycopg2 import extensions
            from psycopg2.extras import Json, register_uuid

            register_uuid()
            pw.psycopg2, pw.pg_extensions = psycopg2, extensions
            pw.pg_register_uuid, pw.Json_pg2 = register_uuid, Json
            adapter = pw.Psycopg2Adapter
            adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
            adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
            adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN
        except ImportError:
            pass
        try:
            import psycopg
            from psycopg.pq import TransactionStatus
            from psycopg.types.json import Json as Json3
            from psycopg.types.json import Jsonb

            pw.psycopg, pw.TransactionStatus = psycopg, TransactionStatus
            pw.Json_pg3, pw.Jsonb_pg3 = Json3, Jsonb
            adapter = pw.Psycopg3Adapter
            adapter.txn_idle = TransactionStatus.IDLE
            adapter.txn_inerror = TransactionStatus.INERROR
            adapter.txn_unknown = TransactionStatus.UNKNOWN
        except ImportError:
            pass


def _bind_mysql(pw: Any) -> None:
    """peewee's own ``try: import pymysql as mysql`` (else MySQLdb), done late."""
    if pw.mysql is None:
        try:
            import pymysql as mysql
        except ImportError:
            try:
                import MySQLdb as mysql
            except ImportError:
                return
        pw.mysql = mysql
