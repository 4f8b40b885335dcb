"""SQL target: upserts records by key into a table of the store's database.

The hot path goes through the DB-API cursor (peewee's query builder costs about 6 times a raw
``executemany``, PERF-NOTES): look up the batch's keys, classify each row as new,
changed or unchanged by its content hash, then write only what changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from syncd.adapters import (
    BOOKKEEPING,
    ItemError,
    Preparer,
    Row,
    RunContext,
    SqlSession,
    Target,
    TargetCapabilities,
    TargetSchema,
    WriteResult,
)
from syncd.errors import JobError

from .sql_check import check_table
from .sql_dialect import DIALECTS, Dialect, Insert
from .sql_lookup import stored_hashes
from .sql_options import IDENTIFIER
from .sql_options import Options as SqlOptions
from .sql_reconcile import reconcile_table
from .sql_revision import TableRevision
from .sql_statements import statements
from .sql_table import ensure_table
from .sql_values import KeyedRows, as_text, hashed_all, key_order, keyed_rows, stored_rows


@dataclass(slots=True)
class Pending:
    """A row to write: its values, digest, whether its key is stored, and how it counted."""

    values: tuple
    digest: str
    in_db: bool
    item: str
    counted: list[str]


class SqlTarget(Target):
    """Upsert into ``content_index`` or a table made from the job's mapping."""

    name = "sql"
    description = "SQL table in the store's database (SQLite, PostgreSQL, MySQL/MariaDB)"
    capabilities = TargetCapabilities(store=True, delete=True, mark_unavailable=True)

    Options = SqlOptions

    def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        self.schema, self.ctx = schema, ctx
        if ctx.sql is None:
            raise JobError("the sql target needs the store's database (a store target)")
        self.sql: SqlSession = ctx.sql
        self.dialect: Dialect = DIALECTS[ctx.sql.dialect]
        self.table = self.options.table
        key = tuple(self.options.key)
        fields = schema.columns + tuple(schema.constants)
        for name in (*fields, *key):
            if not IDENTIFIER.match(name) or name in BOOKKEEPING or name == "id":
                raise JobError(f"target column {name!r} cannot be used in table {self.table}",
                               hint="letters, digits and '_'; not id or a bookkeeping column")
        missing_key = [k for k in key if k not in fields]
        if missing_key:
            raise JobError(f"key field(s) {', '.join(missing_key)} are not in the mapping")
        self.fields = fields
        self.key_index = [fields.index(k) for k in key]
        self.key = key
        self.constants = tuple(str(v) for v in schema.constants.values())
        if self.sql.dialect == "postgres":  # daemons of a fleet may create it at once
            with self.sql.savepoint():
                self.sql.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                 (f"syncd table {self.table}",))
                ensure_table(self.sql, self.table, fields, key)
        else:
            ensure_table(self.sql, self.table, fields, key)
        self.sql_text = statements(self.sql, self.dialect, self.table, fields, key)
        self._revision = TableRevision(self.sql, self.table, schema.job)
        self._mostly_new = self._all_new = self._empty = bool(self.sql.execute(
            f"SELECT NOT EXISTS (SELECT 1 FROM {self._quote(self.table)})").fetchone()[0])

    def empty(self) -> bool:
        return self._empty

    def preparer(self) -> Preparer | None:
        """Hash a batch and put it in key order (``keyed_rows``), ahead of ``write``: for
        a table still empty only. Writing a first load keeps the run's thread busy; a
        re-sync's thread mostly waits for lookups, and reading it ahead made it slower
        (1M unchanged rows: 8.65 s against 6.92 s)."""
        if not self._all_new or (self.constants and not self.schema.columns):
            return None  # (``write`` hashes such constants as the row itself)
        return partial(keyed_rows, self.constants, tuple(self.key_index))

    def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """The database answers and the table exists or can be created (nothing kept)."""
        if ctx.sql is None:
            raise JobError("the sql target needs the store's database (a store target)")
        fields = schema.columns + tuple(schema.constants)
        return check_table(ctx.sql, self.options.table, fields, tuple(self.options.key))

    @property
    def _param(self) -> str:
        return self.sql.param

    def _quote(self, name: str) -> str:
        return self.sql.quote(name)

    # -- writing ----------------------------------------------------------------

    def write(self, rows: Sequence[Row], items: Sequence[str]) -> WriteResult:
        result = WriteResult()
        self._revision.seen += len(rows)
        self._revision.mark_batch()
        constants = self.constants
        if constants and not self.schema.columns:  # nothing to hash them after
            rows, constants = [row + constants for row in rows], ()
        # ``full``: the rows as stored, but for the constants, added only to rows written
        full: list[Any]
        hashes: list[str | None]
        if isinstance(rows, KeyedRows) and rows.constants == constants:  # ``preparer``
            full, hashes = rows, list(rows.digests)
        else:
            full, hashes = stored_rows(rows, constants)
        digests = hashes if hashed_all(hashes) else [d for d in hashes if d is not None]
        if len(digests) < len(hashes):  # NUL bytes: refuse those rows, keep the rest
            for i in [i for i, d in enumerate(hashes) if d is None]:
                result.errors.append(ItemError("validation", "nul_byte",
                                               "a value contains a NUL byte", items[i]))
            kept = [i for i, d in enumerate(hashes) if d is not None]
            full, items = [full[i] for i in kept], [items[i] for i in kept]
        if not full:
            return result
        if self.dialect.blind_upsert and not self.ctx.dry_run and self._mostly_new:
            result = self._upsert_sqlite(full, constants, digests, items, result,
                                         isinstance(full, KeyedRows))
        else:
            result = self._classify_and_write(full, constants, digests, items, result)
        # the next batch likely looks like this one: new data is cheapest to upsert
        # blindly, known data to look up first and leave alone
        self._mostly_new = result.unchanged * 2 < len(full)
        self._all_new = result.inserted == len(full)  # then the next is inserted unlooked
        if (result.inserted or result.updated) and not self.ctx.dry_run:
            self._revision.wrote()
        return result

    def _upsert_sqlite(self, full: list[tuple], constants: tuple[str, ...],
                       digests: list[str], items: Sequence[str], result: WriteResult,
                       in_key_order: bool = False) -> WriteResult:
        """Upsert the batch in one ``executemany``; SQLite itself skips unchanged rows.

        Counting needs no lookup: the batch holds the write lock, so rows with an id
        above the table's largest before the batch are the inserted ones, every other
        change is an update, and the rest were unchanged.
        """
        cursor = self.sql.cursor()
        table = self._quote(self.table)
        before = cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
        refused = len(result.errors)  # NUL rows, already out of ``full``
        tail = self._tail()
        upsert = self._shared_upsert(constants, tail, len(full[0]))
        if upsert is not None:  # each row binds only its own values and digest
            params = [(*values, digest) for values, digest in zip(full, digests, strict=True)]
        else:
            upsert = self.sql_text.upsert_sql
            params = [(*values, *constants, digest, True, *tail)
                      for values, digest in zip(full, digests, strict=True)]
        if not in_key_order:
            order = self._in_key_order(params)
            params, items = [params[i] for i in order], [items[i] for i in order]
        try:
            with self.sql.savepoint():
                cursor.executemany(upsert, params)
                changed = cursor.rowcount
        except self.sql.rejected as exc:
            self.ctx.log.warning("batch rejected; writing its rows one by one", error=str(exc))
            changed = 0
            for row, item in zip(params, items, strict=True):
                try:
                    with self.sql.savepoint():
                        cursor.execute(upsert, row)
                        changed += cursor.rowcount
                except self.sql.rejected as row_exc:
                    result.errors.append(ItemError("target", type(row_exc).__name__,
                                                   str(row_exc).strip(), item))
        inserted = cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE id > ?",
                                  (before,)).fetchone()[0]
        result.inserted = inserted
        result.updated = changed - inserted
        result.unchanged = len(full) - changed - (len(result.errors) - refused)
        return result

    def _shared_upsert(self, constants: tuple[str, ...], tail: tuple, own: int
                       ) -> str | None:
        """The upsert with the values all the batch's rows share (constants, bookkeeping)
        written into its text: binding them row by row was a quarter of SQLite's
        ``executemany``. None where one cannot be written so, or a key is a constant
        (rows are sorted by their own values' key)."""
        literals = [self.dialect.literal(v) for v in (*constants, True, *tail)]
        texts = [t for t in literals if t is not None]
        if len(texts) < len(literals) or max(self.key_index) >= own:
            return None
        p, n = self._param, len(constants)
        values = ", ".join([p] * own + texts[:n] + [p] + texts[n:])
        i = self.sql_text.insert
        return (f"INSERT INTO {i.table} ({i.columns}) VALUES ({values}) {i.on_conflict} "
                f"{self.sql_text.upsert_where}")

    def _tail(self) -> tuple:
        """The bookkeeping values after the hash: job, scope, source, timestamps."""
        now = self.dialect.timestamp(self.sql.now())
        schema = self.schema
        return (schema.job, schema.scope, schema.source_type, schema.source_identifier, now,
                now)

    def _classify_and_write(self, full: list[tuple], constants: tuple[str, ...],
                            digests: list[str], items: Sequence[str], result: WriteResult
                            ) -> WriteResult:
        """Look the keys up, count each row, and write only the new and changed ones."""
        keys = self._keys(full, constants)
        batch = dict(zip(keys, digests, strict=True))
        unique = len(batch) == len(keys)  # usual case: no key twice in the batch
        # a first sync: no key to look up after a batch of new ones, no row to classify
        blind = self._all_new and unique and not self.ctx.dry_run
        if blind and self._inserted(full, constants, digests, self.sql_text.insert_new):
            result.inserted = len(keys)
            return result
        stored = self._lookup(keys)
        get = stored.get
        if unique and not stored and self._inserted(full, constants, digests, self.sql_text.insert):
            result.inserted = len(keys)
            return result
        if unique:  # unchanged rows cost one comparison
            changed = [] if batch == stored else [  # all unchanged: no Python per row
                i for i, (key, digest) in enumerate(zip(keys, digests, strict=True))
                if get(key) != digest]
            result.unchanged = len(keys) - len(changed)
        else:
            changed = list(range(len(keys)))
        final: dict[Any, Pending] = {}
        for i in changed:
            key, digest = keys[i], digests[i]
            earlier = final.get(key)
            if earlier is None:
                if get(key) == digest:
                    result.unchanged += 1
                    continue
                in_db, counted = key in stored, []
            elif earlier.digest == digest:
                result.unchanged += 1
                continue
            else:
                in_db, counted = earlier.in_db, earlier.counted
            outcome = "updated" if in_db or earlier is not None else "inserted"
            setattr(result, outcome, getattr(result, outcome) + 1)
            final[key] = Pending(full[i] + constants, digest, in_db, items[i],
                                 [*counted, outcome])
        if final and not self.ctx.dry_run:
            self._write_isolating(final, result)
        return result

    def _inserted(self, full: list[tuple], constants: tuple[str, ...], digests: list[str],
                  insert: Insert) -> bool:
        """Insert a batch of new keys at once; False, with nothing written, if the
        database rejects it (each row is then classified and written alone)."""
        if self.ctx.dry_run:
            return True
        rows = [(*row, *constants, digest) for row, digest in zip(full, digests, strict=True)]
        try:
            with self.sql.savepoint():
                self._execute(self.sql.cursor(), rows, [], self._tail(), insert)
        except self.sql.rejected:
            return False
        return True

    def _keys(self, rows: list[tuple], constants: tuple[str, ...]) -> list[Any]:
        """Each row's key: one value, or a tuple of several."""
        key_index = self.key_index
        if max(key_index) >= len(rows[0]):  # rare: a key among the constants
            rows = [values + constants for values in rows]
        if len(key_index) == 1:
            [k] = key_index
            return [values[k] for values in rows]
        return [tuple([values[i] for i in key_index]) for values in rows]

    def _write_isolating(self, final: dict[Any, Pending], result: WriteResult) -> None:
        """Write the batch at once; if the database rejects it, find the rows it rejects.

        Each row is then written in its own savepoint, and a rejected one becomes a
        ``target`` error instead of failing the run.
        """
        try:
            with self.sql.savepoint():
                self._write(list(final.values()))
        except self.sql.rejected as exc:
            self.ctx.log.warning("batch rejected; writing its rows one by one", error=str(exc))
            for pending in final.values():
                try:
                    with self.sql.savepoint():
                        self._write([pending])
                except self.sql.rejected as row_exc:
                    result.errors.append(ItemError("target", type(row_exc).__name__,
                                                   str(row_exc).strip(), pending.item))
                    for outcome in pending.counted:
                        setattr(result, outcome, getattr(result, outcome) - 1)

    def _lookup(self, keys: list[Any]) -> dict[Any, str]:
        text = self.sql_text
        return stored_hashes(self.sql, self.dialect, self._quote(self.table),
                             text.key_columns, len(self.key), text.lookup_all, keys)

    def _write(self, pending: Sequence[Pending]) -> None:
        tail = self._tail()
        inserts: list[Row] = []
        updates: list[Row] = []
        for entry in pending:
            if entry.in_db:
                updates.append((*entry.values, entry.digest, True, *tail))
            else:
                inserts.append((*entry.values, entry.digest))
        cursor = self.sql.cursor()
        with self.sql.savepoint():  # driver errors as the session's, alike on every backend
            self._execute(cursor, inserts, updates, tail)

    def _in_key_order(self, rows: Sequence[tuple]) -> list[int]:
        return key_order(rows, self.key_index)

    def _execute(self, cursor: Any, inserts: list[tuple], updates: list[tuple],
                 tail: tuple, insert: Insert | None = None) -> None:
        """Insert rows of values and digest (``tail``, the bookkeeping, follows each),
        update whole rows."""
        inserts = [inserts[i] for i in self._in_key_order(inserts)]
        updates = [updates[i] for i in self._in_key_order(updates)]
        if inserts:
            self.dialect.insert_many(cursor, insert or self.sql_text.insert, inserts,
                                     (True, *tail), self.sql)
        if updates and not self.dialect.upsert_known(cursor, self.sql_text.insert, updates):
            positions, key_index = self.sql_text.update_positions, self.key_index
            params = [tuple(full[i] for i in positions) + tuple(full[i] for i in key_index)
                      for full in updates]
            self.dialect.update_many(cursor, self.sql_text.update_sql, params)

    def forget(self, keys: Sequence[Row]) -> None:
        """Clear the stored content hash of these keys: their next write is never "same"."""
        if not keys or self.ctx.dry_run:
            return
        where = " AND ".join(f"{self._quote(k)} = {self._param}" for k in self.key)
        self.sql.cursor().executemany(
            f"UPDATE {self._quote(self.table)} SET content_hash = NULL WHERE {where}",
            [tuple(as_text(v) for v in key) for key in keys])
        self._revision.wrote()

    # -- after a full sync ------------------------------------------------------

    def reconcile(self, seen_keys: Iterator[Row], on_missing: str) -> int:
        """Mark unavailable (or delete) this job's rows whose key the source no longer has."""
        if on_missing == "keep":
            return 0
        missing = reconcile_table(self.sql, self.dialect, self.table, self.key, self.schema,
                                  self.ctx, seen_keys, on_missing)
        if missing and not self.ctx.dry_run:
            self._revision.wrote()
        return missing

    def rolled_back(self) -> None:
        """The last write's count of writes went with its transaction."""
        self._revision.rolled_back()

    def unread(self, count: int) -> None:
        """Rows the run passed over as unchanged count as seen (``sql_revision``)."""
        self._revision.seen += count

    def revision(self) -> dict[str, Any] | None:
        """Each job's writes, rows and largest id; None when another job wrote the table
        since it was opened, or the run touched too little of it to be worth counting
        (``sql_revision``). An UPDATE by hand changes none of them (a run reading the file
        again would not see one either, unless it changed ``content_hash`` or
        ``is_available``)."""
        return self._revision.current()
