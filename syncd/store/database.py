"""Opening the store's database and bringing its schema up to date."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from syncd.errors import UserError
from syncd.store import local_files
from syncd.store.models import MODELS, SchemaVersion
from syncd.store.orm import pw

#: Bumped when a migration below needs more than "add the missing columns".
SCHEMA_VERSION = 1

CONNECT_TIMEOUT_S = 10  # an unreachable server is reported, not waited on forever
SQLITE_PRAGMAS = {
    # 16 KiB pages for a new database (an existing one keeps its own): a batch's sorted
    # keys land on fewer pages, so a 1M-row first sync takes 9 % less time (measured,
    # README "Benchmarks"); must come before journal_mode, which fixes the page size
    "page_size": 16384,
    "journal_mode": "wal",  # readers (the API) never wait for the writer
    "synchronous": "normal",  # durable at each WAL checkpoint; a crash loses no committed batch
    "cache_size": -16 * 1024,  # 16 MiB: bounded memory; WAL keeps commits cheap
    "foreign_keys": 0,
    # savepoint journals and reconcile's key table in temporary files (the OS caches
    # them): held in memory, a batch's journal grew with the key index, and a first
    # sync's peak RSS with it (122 MB flat at 3M rows, instead of 150 MB and climbing)
    "temp_store": "file",
}
# BEGIN IMMEDIATE (lock_type below): a batch takes the write lock up front and waits its
# turn, instead of failing when it upgrades from reading to writing.


def open_database(url: str, state_dir: Path) -> pw.Database:
    """SQLite in ``state_dir`` for an empty ``url``, else a SQLite, PostgreSQL or MySQL URL."""
    if not url:
        state_dir.mkdir(parents=True, exist_ok=True)
        return _sqlite(state_dir / "syncd.db")
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = sqlite_file(url, state_dir)
        if path.parent == state_dir:
            state_dir.mkdir(parents=True, exist_ok=True)
        check_sqlite_place(url, path)
        return _sqlite(path)
    from playhouse.db_url import parse  # loads the server drivers: only when needed

    if scheme in ("postgres", "postgresql"):
        options = parse(url.replace("postgres://", "postgresql://", 1))
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        return _checked(ReconnectingPostgres(options.pop("database"), **options), "postgres")
    if scheme in ("mysql", "mariadb"):
        options = parse(url.replace("mariadb://", "mysql://", 1))
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        # LOAD DATA LOCAL for the SQL target's batches, guarded (local_files)
        options.setdefault("local_infile", local_files.install())
        return _checked(ReconnectingMySQL(options.pop("database"), charset="utf8mb4",
                                          **options), "mysql")
    raise UserError(f"database URL scheme {scheme!r} is not supported",
                    hint="use sqlite:///file, postgresql://…, mysql://… or leave it empty "
                    "for SQLite in state_dir")


SQLITE_HINT = ("sqlite:///NAME is relative to state_dir, sqlite:////ABSOLUTE/PATH "
               "(four slashes) is absolute")


def sqlite_file(url: str, state_dir: Path) -> Path:
    """The file of a ``sqlite:`` URL, as SQLAlchemy reads it: three slashes then a path
    relative to ``state_dir`` (not the working directory, which a daemon does not choose);
    four slashes for an absolute path."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or path.rstrip("/") == "" or parts.query:
        raise UserError(f"database {url!r}: expected sqlite:///NAME or "
                        "sqlite:////ABSOLUTE/PATH", hint=SQLITE_HINT)
    path = path[1:]
    if path == ":memory:":
        raise UserError(f"database {url!r}: an in-memory database forgets every run",
                        hint="name a file: " + SQLITE_HINT)
    return Path(path) if path.startswith("/") else state_dir / path


def check_sqlite_place(url: str, path: Path) -> None:
    """One clear line, before SQLite's own "unable to open database file", when the
    file cannot be where the URL puts it."""
    where = f"database {url!r} is {path}"
    if path.is_dir():
        raise UserError(f"{where}, which is a directory", hint="name a file in it: "
                        + SQLITE_HINT)
    if not path.parent.is_dir():
        hint = SQLITE_HINT
        if not url.startswith("sqlite:////"):
            rest = url[len("sqlite:///"):]
            hint += f"; for /{rest} write sqlite:////{rest}"
        raise UserError(f"{where}, but the folder {path.parent} does not exist", hint=hint)
    for place in (path, path.parent) if path.exists() else (path.parent,):
        if not os.access(place, os.R_OK | os.W_OK):
            raise UserError(f"{where}, and {place} is not writable (read-only or no "
                            "permission)", hint="give the database a writable place, e.g. "
                            "leave database empty for state_dir/syncd.db")


def _sqlite(path: Path) -> pw.SqliteDatabase:
    """Open now, so a file that is not a database is one line, not a traceback later."""
    db = pw.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, timeout=60,
                           lock_type="IMMEDIATE")
    try:
        db.connect()
    except pw.DatabaseError as exc:
        raise UserError(f"cannot open the SQLite database {path}: {exc}",
                        hint="is it a SQLite database file, on a disk with space, that "
                        "no other program locks?") from None
    return db


if TYPE_CHECKING:  # a mixin for peewee's server databases: they provide what it extends
    _ServerDatabase = pw.Database
else:
    _ServerDatabase = object


class Reconnecting(_ServerDatabase):
    """Reopens a connection the server dropped (restart, ``pg_terminate_backend``).

    Only between transactions: a transaction cut off fails, is rolled back by the
    server, and its run retries from the checkpoint, whose first query lands here.
    """

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        return self._reconnecting(super().execute_sql, sql, params)

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        return self._reconnecting(super().begin, *args, **kwargs)

    def _reconnecting(self, call: Any, *args: Any) -> Any:
        db: Any = self
        if db.in_transaction():
            return call(*args)
        self.drop_if_broken()
        try:
            return call(*args)
        except (pw.OperationalError, pw.InterfaceError):
            if db.in_transaction() or not self.drop_if_broken():
                raise
        return call(*args)  # once more, on a new connection

    def drop_if_broken(self) -> bool:
        """Forget this thread's connection if the server closed it; True if it did."""
        db: Any = self
        conn = None if db.is_closed() else db._state.conn
        if conn is None or not _is_broken(conn):
            return False
        with contextlib.suppress(Exception):  # it is gone either way
            conn.close()
        db._state.reset()
        return True


def _is_broken(conn: Any) -> bool:
    """psycopg2 sets ``closed`` once the server is gone; PyMySQL clears ``open``."""
    if hasattr(conn, "closed") and not callable(conn.closed):
        return bool(conn.closed)
    return not getattr(conn, "open", True)


class ReconnectingPostgres(Reconnecting, pw.PostgresqlDatabase):
    pass


class ReconnectingMySQL(Reconnecting, pw.MySQLDatabase):
    pass


class DatabaseUnavailable(UserError):
    """The store cannot record a run: its disk is full or its server is gone."""


def unavailable(exc: Exception) -> DatabaseUnavailable:
    """``exc`` (a database error) in the user's terms, with what to do about it."""
    text = str(exc).strip()
    if any(word in text.lower() for word in ("disk is full", "no space left")):
        return DatabaseUnavailable(f"the disk holding the database is full ({text})",
                                   hint="free some space; runs then continue where they "
                                        "stopped")
    return DatabaseUnavailable(f"the database does not answer ({text})",
                               hint="check [daemon].database and that the server runs")


def _checked(db: pw.Database, extra: str) -> pw.Database:
    """Say which extra to install when the server's driver is missing."""
    try:
        db.connect()
    except pw.ImproperlyConfigured as exc:
        raise UserError(f"no driver for this database: {exc}",
                        hint=f"pip install 'syncd[{extra}]'") from None
    except pw.OperationalError as exc:
        raise UserError(f"cannot connect to the database: {str(exc).strip()}",
                        hint="check [daemon].database and that the server runs") from None
    return db


def redact_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


SCHEMA_LOCK = 0x73796E6364  # "syncd": the advisory lock key of schema changes


@contextlib.contextmanager
def _schema_lock(db: pw.Database) -> Iterator[None]:
    if not isinstance(db, pw.PostgresqlDatabase):
        yield
        return
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        yield


def upgrade_schema(db: pw.Database) -> None:
    """Create missing tables and add the columns an older version did not have.

    On PostgreSQL in one transaction under an advisory lock: daemons of a fleet starting
    together must not create the same table twice.
    """
    with db.bind_ctx(MODELS), _schema_lock(db):
        _create_missing(db)
        for model in MODELS:
            table = model._meta.table_name
            present = {c.name for c in db.get_columns(table)}
            missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
            if missing:
                # playhouse.migrate loads the PostgreSQL extensions (and psycopg2): only now
                from playhouse.migrate import SchemaMigrator, migrate

                migrator = SchemaMigrator.from_database(db)
                for field in missing:
                    if not field.null and field.default is None:
                        field = field.clone()  # a new NOT NULL column needs a default
                        field.null = True
                    migrate(migrator.add_column(table, field.column_name, field))
        current = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 0
        if current < SCHEMA_VERSION:
            SchemaVersion.create(version=SCHEMA_VERSION)


def _create_missing(db: pw.Database) -> None:
    """Create the tables and indexes that are missing, and only those: on PostgreSQL even
    ``CREATE INDEX IF NOT EXISTS`` waits for every open transaction writing the table,
    so a daemon starting beside a frozen ``syncd sync`` would wait for ever."""
    for model in pw.sort_models(MODELS):  # type: ignore[attr-defined]  # not in the stubs
        table = model._meta.table_name
        if not db.table_exists(table):
            model.create_table(safe=True)
            continue
        present = {index.name for index in db.get_indexes(table)}
        if any(index._name not in present for index in model._meta.fields_to_index()):
            model._schema.create_indexes(safe=True)
