"""The values that flow between the engine and adapters: batches, errors, results."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from syncd.errors import ErrorType

Checkpoint = dict[str, Any]
Row = tuple[Any, ...]


class Options(BaseModel):
    """Base of every adapter's options: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ItemError:
    """One record that could not be synced; stored in ``sync_errors``."""

    type: ErrorType
    code: str
    message: str
    item: str = ""
    retryable: bool = False


@dataclass(slots=True)
class Batch:
    """Rows read since the previous checkpoint, in the order of the requested fields.

    ``items`` names each row for error reports (e.g. ``"line 12"``); ``errors`` are
    the records of this stretch that could not be read at all.
    """

    rows: list[Row]
    items: list[str]
    checkpoint: Checkpoint
    errors: list[ItemError] = field(default_factory=list)
    skipped: int = 0
    progress: int = 0  # position reached, in the unit of Source.size (e.g. bytes)
    #: records passed over unread since the previous batch, known to be as the last
    #: run left them (``Source.read_lines``): counted processed and unchanged
    unread: int = 0


@dataclass(slots=True)
class LineDigests:
    """A text source's lines, each digested without being parsed (``Source.line_digests``)."""

    #: how lines become records (encoding, delimiter, header): lines read
    #: another way may give other records, so another layout compares as all changed
    layout: str
    first_line: int  # the number of the first line digested (items name lines "line N")
    #: 64-bit digests of the lines in order, a block at a time; a ``None`` block means
    #: a line may not be a whole record (a quoted field with a line break): none count
    blocks: Iterator[array | None]


@dataclass(slots=True)
class WriteResult:
    """What a target did with a batch."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[ItemError] = field(default_factory=list)
    #: stored in ``sync_errors`` like ``errors``, for records counted ``skipped`` rather
    #: than ``failed`` (a deferred record, a conflict left for review)
    notices: list[ItemError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TargetSchema:
    """The shape of what a job writes: ``columns`` in row order, then ``constants``."""

    job: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    constants: Mapping[str, Any]
    source_type: str
    source_identifier: str
    scope: str | None = None  # what a full sync covers (e.g. one drive); None: the whole job


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A finished run, as handed to ``syncd_run_finished``."""

    run_id: int
    job: str
    trigger: str
    status: str
    counters: Mapping[str, int]
    error_message: str | None
    source_identifier: str = ""
    started_at: str | None = None  # ISO-8601 UTC
    completed_at: str | None = None
    attempt: int = 1
    errors: tuple[Mapping[str, Any], ...] = ()  # the first few: type, code, message, item


ChangeKind = Literal["create", "update", "delete", "mark_unavailable"]
Outcome = Literal["created", "updated", "deleted", "unavailable", "adopted", "failed",
                  "deferred", "kept", "conflict"]


@dataclass(frozen=True, slots=True)
class Change:
    """One record's change, as the engine hands it to a ``RecordTarget``.

    ``remote_id`` is what the id map knows so far (None before the first create);
    ``idempotency_key`` is stable across retries and restarts of the same content
    (send it as the ``Idempotency-Key`` of a create); ``record`` is empty for a delete.

    ``sent`` is what an intent recorded it would send beyond the record (e.g. the final
    name of a renamed create): set by ``prepare`` and committed with the ``pending``
    intent, and handed back on the retry of an interrupted create so ``find`` can
    recognise it. After a record is created or updated, ``sent["fields"]`` holds the
    record as it was sent, so that a delete (whose ``record`` is empty) can still name
    what its request needs. ``remote_hash`` is the hash of the remote record as last seen.
    """

    kind: ChangeKind
    key: str  # the local key as text (a JSON array of texts for a composite key)
    record: Mapping[str, Any]
    item: str  # names the record in errors, e.g. "line 12"
    content_hash: str
    idempotency_key: str
    remote_id: str | None = None
    sent: Mapping[str, Any] | None = None
    remote_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """What a dry run found one change would do (``preview``): the requests it would
    send as ``(method, url, body)`` with every secret shown as ``***``, and, when the
    record would go out under another name, ``renamed = (name, sent as)``."""

    requests: tuple[tuple[str, str, Any], ...] = ()
    renamed: tuple[str, str] | None = None


#: A remote id a dry run assumes (the record an upstream job would create first): shown
#: in previews as ``{new:JOB:KEY}``; no remote holds it, so nothing needs to be read there.
UNSENT = "{new:"


def unsent_id(job: str, key: str) -> str:
    return f"{UNSENT}{job}:{key}}}"


def is_unsent(text: str) -> bool:
    """Does ``text`` (an id, a rendered path) hold a remote id a dry run only assumes?"""
    return UNSENT in text or "%7Bnew%3A" in text  # as it is, or quoted in a URL path


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one ``Change``: ``error`` is set when ``outcome`` is failed,
    deferred or conflict.

    ``adopted``: the record was already on the remote (found by ``RecordTarget.find``).
    ``deferred``: it cannot be sent yet (a reference has no remote id); retried later.
    ``kept``: both sides changed and the remote's version was kept (counted unchanged).
    ``conflict``: both sides changed and the pair waits for a person (counted skipped;
    ``error`` says so; ``remote_record`` is the remote's side, queued with the local one
    in ``sync_conflicts``). ``remote_hash`` is the hash of the remote record as it now is.
    """

    outcome: Outcome
    remote_id: str | None = None
    error: ItemError | None = None
    remote_hash: str | None = None
    remote_record: Mapping[str, Any] | None = None
    #: files uploaded for this record: name -> (remote id, hash of the file's bytes);
    #: the engine keeps each in the id map under ``KEY#name`` (``ctx.idmap.entries``)
    media: Mapping[str, tuple[str, str]] | None = None
    planned: Planned | None = None  # a dry run's ``preview``: what would be sent

    @classmethod
    def failed(cls, error: ItemError, remote_id: str | None = None) -> Result:
        return cls("failed", remote_id, error)

    @property
    def is_failure(self) -> bool:
        """Whether ``error`` counts the record failed (not merely deferred or in review)."""
        return self.outcome == "failed"
