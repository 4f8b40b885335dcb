"""The tables of SPEC §6. Their names and columns are a contract: scripts read them."""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.store.orm import pw


def utcnow() -> datetime:
    """Now in UTC, naive, as every backend stores it the same way."""
    return datetime.now(UTC).replace(tzinfo=None)


ID_MAP_STATES = ("pending", "synced", "failed", "deferred", "deleted")
CONFLICT_STATUSES = ("open", "resolved")
KEEP = ("local", "remote")  # what a person may keep when resolving a conflict


class BaseModel(pw.Model):
    # peewee adds this key itself; declared so that type checkers know ``row.id``
    id = pw.AutoField()

    class Meta:
        legacy_table_names = False


class SyncRun(BaseModel):
    job = pw.CharField(max_length=191, index=True)
    trigger = pw.CharField(max_length=32)
    status = pw.CharField(max_length=16, default="pending", index=True)
    source_type = pw.CharField(max_length=64)
    source_identifier = pw.TextField(default="")
    source_fingerprint = pw.TextField(null=True)
    items_processed = pw.BigIntegerField(default=0)
    items_inserted = pw.BigIntegerField(default=0)
    items_updated = pw.BigIntegerField(default=0)
    items_unchanged = pw.BigIntegerField(default=0)
    items_skipped = pw.BigIntegerField(default=0)
    items_failed = pw.BigIntegerField(default=0)
    items_missing = pw.BigIntegerField(default=0)  # marked unavailable or deleted by on_missing
    checkpoint = pw.TextField(null=True)  # JSON
    error_message = pw.TextField(null=True)
    attempt = pw.IntegerField(default=1)
    parent_run = pw.IntegerField(null=True)
    host = pw.CharField(max_length=255, default="")
    dry_run = pw.BooleanField(default=False)
    job_spec = pw.TextField(null=True)  # JSON of an ad-hoc job, which no config holds
    device = pw.TextField(null=True)  # JSON: label, uuid, serial of the USB drive read
    claimed_by = pw.CharField(max_length=255, null=True)  # "host:pid" of the executing daemon
    lease_until = pw.DateTimeField(null=True)  # the claim lapses after this unless renewed
    affinity = pw.CharField(max_length=255, null=True)  # only this host may run it (SPEC §11)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    started_at = pw.DateTimeField(null=True)
    completed_at = pw.DateTimeField(null=True)
    updated_at = pw.DateTimeField(null=True)
    #: JSON {digest, revision}: what a completed run read and left in its target
    #: (``syncd.engine.unchanged``); the next run of the same content may skip reading
    target_mark = pw.TextField(null=True)

    class Meta:
        table_name = "sync_runs"


class SyncError(BaseModel):
    sync_run_id = pw.IntegerField(index=True)
    error_type = pw.CharField(max_length=16)
    error_code = pw.CharField(max_length=64)
    error_message = pw.TextField()
    item_identifier = pw.TextField(default="")
    is_retryable = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sync_errors"


#: the columns the SQL target keeps in every table it writes, besides ``id``; shared by
#: the built-in SQL target and the API, which must not name them


class ContentIndex(BaseModel):
    content_type = pw.CharField(max_length=191, null=True)
    title = pw.TextField(null=True)
    artist = pw.TextField(null=True)
    genre = pw.TextField(null=True)
    source_type = pw.CharField(max_length=64, null=True)
    source_identifier = pw.TextField(null=True)
    external_id = pw.CharField(max_length=191, null=True)
    is_available = pw.BooleanField(default=True)
    content_hash = pw.CharField(max_length=64, null=True)
    sync_job = pw.CharField(max_length=191, null=True)
    sync_scope = pw.CharField(max_length=191, null=True)  # e.g. the drive a record is on
    first_seen_at = pw.DateTimeField(null=True)
    last_synced_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "content_index"


class IngestedFile(BaseModel):
    path = pw.TextField()
    size = pw.BigIntegerField()
    mtime = pw.DoubleField()
    sha256 = pw.CharField(max_length=64, index=True)
    job = pw.CharField(max_length=191, default="", index=True)
    sync_run_id = pw.IntegerField(null=True)
    ingested_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "ingested_files"


class IdMap(BaseModel):
    """Local key → remote id of an export job: the outbox of SPEC §8.

    A ``pending`` row is committed before its create is sent, with the ``request_key``
    sent as ``Idempotency-Key``; the answer's remote id and ``synced`` commit with the
    run's counters and checkpoint.
    """

    job = pw.CharField(max_length=191)
    local_key = pw.CharField(max_length=191)
    remote_id = pw.CharField(max_length=191, null=True)
    state = pw.CharField(max_length=16, default="pending")  # ID_MAP_STATES
    content_hash = pw.CharField(max_length=64, null=True)  # of what was last sent
    remote_hash = pw.CharField(max_length=64, null=True)  # of the remote record last seen
    #: bidirectional pairs: the hash of the fields both jobs share, as last written on
    #: either side (sent by the export, or taken in by the import): equal means an echo
    pair_hash = pw.CharField(max_length=64, null=True)
    request_key = pw.CharField(max_length=64, null=True)
    sent = pw.TextField(null=True)  # JSON: what the last intent sent beyond the record
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    #: was ``last_error`` transient (network, 429, 5xx: later runs get through by
    #: themselves) or permanent (needs a person)? NULL without an error
    error_retryable = pw.BooleanField(null=True)
    synced_at = pw.DateTimeField(null=True)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "id_map"
        indexes = ((("job", "local_key"), True),)


class SyncConflict(BaseModel):
    """A record changed on both sides since the last sync, waiting for a person (§8).

    At most one ``open`` row per job and local key: a run that meets the same conflict
    again replaces its records. ``local_hash``/``remote_hash`` are the two versions'
    hashes as the id map keeps them, so that resolving can tell the next run what to do.
    """

    job = pw.CharField(max_length=191)
    local_key = pw.CharField(max_length=191)
    remote_id = pw.CharField(max_length=191, null=True)
    local_record = pw.TextField()  # JSON
    remote_record = pw.TextField()  # JSON
    local_hash = pw.CharField(max_length=64, null=True)
    remote_hash = pw.CharField(max_length=64, null=True)
    status = pw.CharField(max_length=16, default="open", index=True)  # CONFLICT_STATUSES
    resolution = pw.CharField(max_length=16, null=True)  # KEEP, once resolved
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)  # last met by a run
    resolved_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "sync_conflicts"
        indexes = ((("job", "local_key"), False),)


class WebhookDelivery(BaseModel):
    """A webhook delivery already acted on: a replay of it is answered with its run."""

    job = pw.CharField(max_length=191)
    delivery = pw.CharField(max_length=191)  # the sender's X-Syncd-Delivery id
    sync_run_id = pw.IntegerField(null=True, index=True)  # null while the run is being made
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = ((("job", "delivery"), True),)
class FleetDaemon(BaseModel):
    """One daemon of a fleet, as its heartbeat last left it (``/v1/health`` peers)."""

    host = pw.CharField(max_length=255, unique=True)
    holder = pw.CharField(max_length=255)  # "host:pid" of the process now running there
    version = pw.CharField(max_length=64, default="")
    started_at = pw.DateTimeField(default=utcnow)
    last_seen = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sync_daemons"


class ScheduleTick(BaseModel):
    """One fire of a job's schedule for the whole fleet: the unique row is the lock."""

    job = pw.CharField(max_length=191)
    fire_time = pw.DateTimeField()
    sync_run_id = pw.IntegerField(null=True)
    host = pw.CharField(max_length=255, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sync_schedule_ticks"
        indexes = ((("job", "fire_time"), True),)


class RateSlot(BaseModel):
    """A request start reserved against a remote's rate limit, fleet-wide (SPEC §11)."""

    remote = pw.CharField(max_length=191, index=True)
    at = pw.DoubleField()  # the database's clock, seconds since the epoch

    class Meta:
        table_name = "sync_rate_slots"


class TableWrite(BaseModel):
    """How many transactions each job wrote into a target table. A run compares these
    counts with the ones its job's last run left, to tell whether anything else of syncd
    wrote the table since (``syncd.engine.unchanged``)."""

    table_name = pw.CharField(max_length=191)
    job = pw.CharField(max_length=191)
    writes = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "sync_table_writes"
        indexes = ((("table_name", "job"), True),)


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "syncd_schema"


MODELS: tuple[type[BaseModel], ...] = (SyncRun, SyncError, ContentIndex, IngestedFile,
                                       IdMap, SyncConflict, WebhookDelivery, FleetDaemon,
                                       ScheduleTick, RateSlot, TableWrite,
                                       SchemaVersion)
#: syncd's own tables, which no job may write into (content_index is a target like any)
