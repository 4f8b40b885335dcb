"""Opening the store's database and bringing its schema up to date."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import peewee as pw
from playhouse.migrate import SchemaMigrator, migrate

from syncd.errors import UserError
from syncd.store.models import MODELS, SchemaVersion

#: Bumped when a migration below needs more than "add the missing columns".
SCHEMA_VERSION = 1

SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers (the API) never wait for the writer
    "synchronous": "normal",  # durable at each WAL checkpoint; a crash loses no committed batch
    "cache_size": -16 * 1024,  # 16 MiB: bounded memory; WAL keeps commits cheap
    "foreign_keys": 0,
    # BEGIN IMMEDIATE (lock_type below): a batch takes the write lock up front and waits
    # its turn, instead of failing when it upgrades from reading to writing.
    "temp_store": "memory",
}


def open_database(url: str, state_dir: Path) -> pw.Database:
    """SQLite in ``state_dir`` for an empty ``url``, else a PostgreSQL or MySQL URL."""
    if not url:
        state_dir.mkdir(parents=True, exist_ok=True)
        return pw.SqliteDatabase(str(state_dir / "syncd.db"), pragmas=SQLITE_PRAGMAS,
                                 timeout=60, lock_type="IMMEDIATE")
    from playhouse.db_url import connect  # loads the server drivers: only when needed

    scheme = urlsplit(url).scheme
    if scheme in ("sqlite",):
        return pw.SqliteDatabase(url.removeprefix("sqlite:///"), pragmas=SQLITE_PRAGMAS,
                                 timeout=60, lock_type="IMMEDIATE")
    if scheme in ("postgres", "postgresql"):
        return _checked(connect(url.replace("postgres://", "postgresql://", 1)), "postgres")
    if scheme in ("mysql", "mariadb"):
        url = url.replace("mariadb://", "mysql://", 1)
        return _checked(connect(url, charset="utf8mb4"), "mysql")
    raise UserError(f"database URL scheme {scheme!r} is not supported",
                    hint="use postgresql://…, mysql://… or leave it empty for SQLite")


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


def upgrade_schema(db: pw.Database) -> None:
    """Create missing tables and add the columns an older version did not have."""
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=True)
        migrator = SchemaMigrator.from_database(db)
        for model in MODELS:
            table = model._meta.table_name
            present = {c.name for c in db.get_columns(table)}
            missing = [f for f in model._meta.sorted_fields if f.column_name not in present]
            if missing:
                for field in missing:
                    if not field.null and field.default is None:
                        field = field.clone()  # a new NOT NULL column needs a default
                        field.null = True
                    migrate(migrator.add_column(table, field.column_name, field))
        current = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar() or 0
        if current < SCHEMA_VERSION:
            SchemaVersion.create(version=SCHEMA_VERSION)
