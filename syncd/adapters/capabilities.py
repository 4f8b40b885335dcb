"""What an adapter declares it can do, instead of being probed with ``getattr``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceCapabilities:
    """Declared on a source class as ``capabilities = SourceCapabilities(...)``."""

    #: a read to the end yields every record there is, so a full run may apply
    #: ``on_missing`` to what it did not see (False for incremental or sampled reads)
    complete: bool = True
    #: ``header()`` names the fields before a run (the API checks a mapping with it)
    header: bool = False
    #: reads a remote system over HTTP: its identifier is a URL, and an ad-hoc trigger
    #: hands it ``url``, ``method``, ``auth``, ``data_path`` and ``pagination`` (SPEC §5)
    remote: bool = False
    #: reads tables of the store's own database through ``ctx.sql`` (``SELECT`` only)
    store: bool = False
    #: once opened, the source can be pickled and ``read`` in another process (it keeps
    #: nothing of ``open``'s context): the engine then reads a large one there, a batch
    #: ahead of the writes, and asks the copy that read it ``unchanged_since``
    portable: bool = False


@dataclass(frozen=True, slots=True)
class TargetCapabilities:
    """Declared on a target class as ``capabilities = TargetCapabilities(...)``."""

    #: writes go to the store's own database through ``ctx.sql``, in the batch's
    #: transaction: the table is its own id map (``Target``, not ``RecordTarget``)
    store: bool = False
    #: can change a record it wrote; without it a changed record is a conflict error
    update: bool = True
    #: can remove a record (``on_missing = "delete"``)
    delete: bool = False
    #: can flag a record unavailable (``on_missing = "mark_unavailable"``)
    mark_unavailable: bool = False
    #: ``find()`` recognises a record an interrupted attempt may have created
    lookup: bool = False
    #: records in flight at once (``AsyncRecordTarget``); the remote's rate limit still holds
    concurrency: int = 1
    #: a run stopped mid-way may go on from its checkpoint; False: it starts over from
    #: the first record (a target that writes a whole file, made final by ``finish``)
    resumable: bool = True
