"""What the engine hands an adapter for one run: the ``RunContext``.

Everything an adapter may need from syncd comes through it, so no adapter reaches
into the store, the engine or module globals: a logger bound to the run, secrets
that never reach logs, HTTP clients that keep to a remote's rate limit, a
cancellation check, a folder for artifacts and, only for targets that write into
the store's own database, a narrow SQL session inside the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

from syncd.config.secrets import Secret
from syncd.errors import AuthError

if TYPE_CHECKING:
    from syncd.remote.http import HttpClient, HttpFactory

Dialect = Literal["sqlite", "postgres", "mysql"]


class SqlSession(Protocol):
    """The store's database as a ``store`` target sees it: DB-API cursors in the batch's
    transaction, introspection, and the dialect's quoting. Nothing else of the store."""

    dialect: Dialect
    param: str  # the driver's placeholder: "?" or "%s"
    #: syncd's own tables, which no job may write into
    reserved_tables: frozenset[str]
    #: what the database raises when it refuses a row (as opposed to a lost connection)
    rejected: tuple[type[Exception], ...]

    def cursor(self) -> Any: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: what fails inside rolls back alone, as a ``rejected``."""
        ...
    def local_file(self, path: str) -> AbstractContextManager[bool]:
        """MySQL/MariaDB: within it, ``LOAD DATA LOCAL INFILE`` may send ``path`` (only that
        file); yields False where the connection cannot send files (other databases)."""
        ...
    def table_exists(self, table: str) -> bool: ...
    def columns(self, table: str) -> set[str]: ...
    def primary_key(self, table: str) -> list[str]: ...
    def indexes(self, table: str) -> dict[str, tuple[tuple[str, ...], bool]]:
        """Index name → (columns, unique)."""
        ...
    def quote(self, name: str) -> str: ...
    def now(self) -> datetime:
        """The current UTC time as this database stores timestamps."""
        ...
    def note_write(self, table: str) -> None:
        """Count a write of the run's job into ``table``: call it in every transaction
        that changes rows of the table, so ``writes`` tells another writer happened."""
        ...
    def writes(self, table: str) -> dict[str, int]:
        """Each job's count of writes into ``table`` (``note_write``), for a revision."""
        ...


class IdMapView(Protocol):
    """A record target's read-only view of its job's id map (``ctx.idmap``)."""

    def known(self, remote_ids: Sequence[str]) -> set[str]:
        """Which of these remote ids the id map already holds (for any local key)."""
        ...

    def entries(self, local_keys: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """Remote id and content hash of these local keys' synced rows (e.g. ``KEY#photo``
        of an uploaded file)."""
        ...


class Secrets:
    """Reveals ``Secret`` values; each value revealed is blanked in every log line."""

    def reveal(self, secret: Secret | str | None, what: str = "secret") -> str:
        """The value of ``secret`` (a plain string is returned as given, for tests).

        A secret that cannot be read is an ``AuthError`` naming where it looked,
        never the value.
        """
        if secret is None:
            raise AuthError(f"{what} is not configured")
        if isinstance(secret, str):
            return secret
        try:
            return secret.reveal()
        except LookupError as exc:
            raise AuthError(f"{what}: {exc}") from None


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an adapter may use while a run executes (sources and targets alike)."""

    run_id: int
    job: str
    log: structlog.typing.FilteringBoundLogger
    state_dir: Path | None  # an adapter's own files that outlive runs (e.g. sessions)
    dry_run: bool = False
    #: the store's database: for targets declaring ``TargetCapabilities(store=True)``
    #: (in the batch's transaction), and for sources declaring
    #: ``SourceCapabilities(store=True)``, which only read through it (``SELECT``)
    sql: SqlSession | None = None
    #: record targets: what the job's id map holds (e.g. to tell a remote record of
    #: the same name that another local record created from one nobody here made)
    idmap: IdMapView | None = None
    secrets: Secrets = field(default_factory=Secrets)
    #: ``http(...)`` makes a client with a remote's rate limit, retries and timeout
    http: HttpFactory | None = None
    #: True once the run is asked to stop: check it between records
    cancelled: Callable[[], bool] = lambda: False
    #: the final checkpoint of the last completed run of this job on the same source
    #: identifier (None: there is none): where an incremental read picks up
    previous_checkpoint: Mapping[str, Any] | None = None
    #: when the run first started (UTC; kept when it resumes), e.g. for a file's name
    started_at: datetime | None = None

    @property
    def work_dir(self) -> Path:
        """Where this run's artifacts go (screenshots, traces): ``state_dir/artifacts/RUN``."""
        if self.state_dir is None:
            raise RuntimeError("this run has no state_dir for artifacts")
        path = self.state_dir / "artifacts" / str(self.run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def client(self, remote: str, **settings: Any) -> HttpClient:
        """An HTTP client for ``remote`` (rate limit shared by every run that names it)."""
        if self.http is None:
            raise RuntimeError("this run has no HTTP client factory")
        return self.http(remote, **settings)


#: The same context, by the name the contract uses for targets.
TargetContext = RunContext

