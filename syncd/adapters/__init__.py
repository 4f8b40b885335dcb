"""The adapter contract: what a plugin's source or target implements, and is handed.

    Source, AsyncSource            yield ``Batch``es of rows, each ending at a checkpoint
                                   from which the source can be reopened
    Target                         writes batches into the store's own database through
                                   ``ctx.sql``, in the batch's transaction (SQL tables)
    RecordTarget, AsyncRecordTarget
                                   anything else (REST, browser, email, files): one
                                   ``Change`` in, one ``Result`` out, per record
    SourceCapabilities, TargetCapabilities
                                   what an adapter declares it can do
    RunContext (TargetContext)     log, secrets, HTTP clients, cancellation, work folder,
                                   the SQL session for store targets (and, read-only, for
                                   store sources), the id map's view for record targets

Optionally, a source's ``check(ctx)`` and a target's ``check(schema, ctx)`` say
whether it can be reached and authenticated, touching no data (``syncd check``):
one line back when it answers, an ``AdapterError`` when not.

The engine owns every policy that must behave the same for all adapters: mapping and
constants, content hashes, unchanged detection, dry runs, the id map and idempotency
keys, ``on_missing`` and its mass-removal guard, retries and rate limits. Errors an
adapter raises or returns are ``syncd.errors.AdapterError`` subclasses
(``AuthError``, ``RateLimited``, ``ConflictError``, ``NetworkError``,
``RemoteRejected``), each with its ``error_type`` and whether it is retryable.

A plugin module registers its classes with a hook::

    from syncd import hookimpl

    @hookimpl
    def syncd_register_adapters(registry):
        registry.add_target(MyTarget)
"""

from typing import TYPE_CHECKING, Any

from syncd.adapters.capabilities import SourceCapabilities, TargetCapabilities
from syncd.adapters.context import IdMapView, RunContext, Secrets, SqlSession, TargetContext
from syncd.adapters.digests import digests64
from syncd.adapters.notices import NotifyContext
from syncd.adapters.records import (
    Batch,
    Change,
    ChangeKind,
    Checkpoint,
    ErrorType,
    ItemError,
    LineDigests,
    Options,
    Outcome,
    Planned,
    Result,
    Row,
    RunSummary,
    TargetSchema,
    WriteResult,
    is_unsent,
    unsent_id,
)
from syncd.adapters.source import AsyncSource, Source
from syncd.adapters.target import AsyncRecordTarget, Preparer, RecordTarget, Target
from syncd.config.secrets import Secret
from syncd.globs import matcher as glob_matcher
from syncd.globs import pattern_regex as glob_regex
from syncd.store.hashing import remote_hash
from syncd.store.names import BOOKKEEPING, RESERVED_TABLES

if TYPE_CHECKING:
    from syncd.hookspecs import DriveInfo, DriveJob
    from syncd.plugins import Registry

__all__ = [
    "BOOKKEEPING",
    "RESERVED_TABLES",
    "AsyncRecordTarget",
    "AsyncSource",
    "Batch",
    "Change",
    "ChangeKind",
    "Checkpoint",
    "DriveInfo",
    "DriveJob",
    "ErrorType",
    "IdMapView",
    "ItemError",
    "LineDigests",
    "NotifyContext",
    "Options",
    "Outcome",
    "Planned",
    "Preparer",
    "RecordTarget",
    "Registry",
    "Result",
    "Row",
    "RunContext",
    "RunSummary",
    "Secret",
    "Secrets",
    "Source",
    "SourceCapabilities",
    "SqlSession",
    "Target",
    "TargetCapabilities",
    "TargetContext",
    "TargetSchema",
    "WriteResult",
    "digests64",
    "glob_matcher",
    "glob_regex",
    "is_unsent",
    "remote_hash",
    "unsent_id",
]


_LATE = {"DriveInfo": "syncd.hookspecs", "DriveJob": "syncd.hookspecs",
         "Registry": "syncd.plugins"}


def __getattr__(name: str) -> Any:
    """Names whose modules import this one: loaded on first use, not at import."""
    if name in _LATE:
        import importlib

        return getattr(importlib.import_module(_LATE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
