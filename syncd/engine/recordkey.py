"""A whole-record key: a digest of a record's mapped values, as one pseudo source field.

A job whose records have no identifying column (an ad-hoc CSV without ``id``) is keyed
by the whole record. Rather than a unique index over every column (MySQL cannot index
many TEXT columns), the key is one column holding a digest of the mapped values: the
mapping names the pseudo field ``RECORD_FIELD`` as the source of that column, and
``with_record_key`` wraps the source so that reading it yields the digest. Two records
then share a key only when every mapped value is equal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from syncd.adapters import AsyncSource, Batch, Checkpoint, RunContext, Source, SourceCapabilities
from syncd.engine.reading import batches

#: the source field whose value is the digest of the record's other mapped fields
RECORD_FIELD = "<whole record>"


def record_digest(values: Sequence[Any]) -> str:
    """32 hex digits naming ``values``; JSON keeps ``("a,b", "c")`` and ``("a", "b,c")`` apart."""
    text = json.dumps([None if v is None else str(v) for v in values], ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def with_record_key(source: Source | AsyncSource, fields: Sequence[str]
                    ) -> Source | AsyncSource:
    """``source`` itself, or wrapped to serve ``RECORD_FIELD`` when ``fields`` map it."""
    if RECORD_FIELD not in fields:
        return source
    return RecordKeySource(source, [f for f in fields if f != RECORD_FIELD])


class RecordKeySource(Source):
    """Reads through ``inner`` and adds the digest of ``record_fields`` as ``RECORD_FIELD``."""

    name = "record_key"

    def __init__(self, inner: Source | AsyncSource, record_fields: Sequence[str]) -> None:
        super().__init__(inner.options, inner.identifier_override)
        self.inner = inner
        self.record_fields = list(record_fields)

    @property  # the inner source's, which it may set per run (e.g. a cut read)
    def capabilities(self) -> SourceCapabilities:  # type: ignore[override]
        return self.inner.capabilities

    def header(self) -> list[str] | None:
        return self.inner.header()

    def open(self, ctx: RunContext) -> None:
        self.inner.open(ctx)

    def unchanged_since(self, fingerprint: dict[str, Any]) -> bool:
        return self.inner.unchanged_since(fingerprint)

    @property
    def identifier(self) -> str:
        return self.inner.identifier

    def fingerprint(self) -> dict[str, Any] | None:
        return self.inner.fingerprint()

    def size(self) -> int | None:
        return self.inner.size()

    @property
    def scope(self) -> str | None:
        return self.inner.scope

    def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
             batch_rows: int) -> Iterator[Batch]:
        if RECORD_FIELD not in fields:
            yield from batches(self.inner, fields, checkpoint, batch_rows)
            return
        wanted = list(dict.fromkeys([*self.record_fields,
                                     *(f for f in fields if f != RECORD_FIELD)]))
        record = [wanted.index(f) for f in self.record_fields]
        picks = [None if f == RECORD_FIELD else wanted.index(f) for f in fields]
        for batch in batches(self.inner, wanted, checkpoint, batch_rows):
            rows = []
            for row in batch.rows:
                digest = record_digest([row[i] for i in record])
                rows.append(tuple(digest if i is None else row[i] for i in picks))
            batch.rows = rows
            yield batch
