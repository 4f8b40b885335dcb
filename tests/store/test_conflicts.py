"""The conflict queue and the id map's ledger fields, on SQLite, PostgreSQL and MariaDB.

Conflicts are put in the queue as a reviewing target would (``conflicts.record`` with
the change's record and the remote's); everything else happens through real export
runs against ``MemoryRemote``: what resolving writes must make the *next run* send
the local record (keep local) or nothing (keep remote).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playhouse.migrate import SchemaMigrator, migrate

from syncd.engine.ledger import idmap_page, transient
from syncd.store import Store, conflicts, idmap
from syncd.store.hashing import remote_hash
from syncd.store.idmap import Settled
from syncd.store.models import IdMap, SyncConflict
from syncd.testing import MemoryRemote
from tests.conftest import BACKENDS
from tests.ledger_data import EXPECTED, JOB, fill, records, run

pytestmark = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture
def remote() -> Iterator[MemoryRemote]:
    with MemoryRemote() as r:
        yield r


def row(key: str) -> IdMap:
    return IdMap.get(IdMap.job == JOB, IdMap.local_key == key)


def test_an_open_conflict_is_replaced_not_doubled_and_resolved_only_once(store):
    first = conflicts.record(JOB, "3", "r3", {"id": "3", "name": "local"},
                             {"id": "r3", "name": "remote"})
    again = conflicts.record(JOB, "3", "r3", {"id": "3", "name": "local 2"},
                             {"id": "r3", "name": "remote 2"})
    other = conflicts.record("other", "3", "x9", {"id": "3"}, {"id": "x9"})
    assert again == first and other != first
    stored = conflicts.get(first)
    assert stored is not None and stored.status == "open"
    assert json.loads(stored.local_record) == {"id": "3", "name": "local 2"}
    assert json.loads(stored.remote_record) == {"id": "r3", "name": "remote 2"}
    assert stored.remote_hash == remote_hash({"name": "remote 2", "id": "r3"})  # any order
    assert SyncConflict.select().where(SyncConflict.job == JOB).count() == 1

    conflicts.resolve(first, "remote")
    later = conflicts.record(JOB, "3", "r3", {"id": "3", "name": "local 3"}, {"id": "r3"})
    assert later != first
    assert [c.id for c in conflicts.listing(status="open", job=JOB)] == [later]
    assert [c.id for c in conflicts.listing(job=JOB)] == [later, first]  # newest first
    assert [c.id for c in conflicts.listing(before=later, limit=1)] == [other]
    assert conflicts.get(10**9) is None

    with pytest.raises(conflicts.AlreadyResolved, match="already resolved"):
        conflicts.resolve(first, "local")
    with pytest.raises(conflicts.UnknownConflict):
        conflicts.resolve(10**9, "local")
    with pytest.raises(ValueError, match="keep"):
        conflicts.resolve(later, "both")
    assert conflicts.get(first).resolution == "remote"  # the first decision stands


async def test_keep_local_makes_the_next_run_overwrite_the_remote(store, tmp_path, remote):
    await run(store, tmp_path, records(range(3)), remote.url)
    remote_id = row("1").remote_id
    remote.items[remote_id]["name"] = "changed remotely"  # both sides changed
    local = records(range(3), i1="changed locally")
    conflict = conflicts.record(JOB, "1", remote_id, local[1], remote.items[remote_id])
    idmap.settle(JOB, [Settled("1", "failed", remote_id, error="changed on both sides",
                               retryable=False)])  # as a reviewing target leaves it
    assert idmap_page(JOB)["entries"][1]["needsPerson"] is True

    resolved = conflicts.resolve(conflict, "local")
    assert resolved.state == "pending" and resolved.conflict.status == "resolved"
    entry = row("1")
    assert (entry.state, entry.last_error, entry.error_retryable) == ("pending", None, None)
    assert entry.remote_hash == remote_hash(remote.items[remote_id])  # the version seen
    assert transient(entry) is True

    sent = len(remote.requests)
    done = await run(store, tmp_path, local, remote.url)
    assert (done.items_updated, done.items_unchanged) == (1, 2)
    assert remote.requests[sent:] == [("PUT", f"/items/{remote_id}")]
    assert remote.items[remote_id]["name"] == "changed locally"
    assert row("1").state == "synced"


async def test_keep_remote_sends_nothing_until_the_local_record_changes_again(
        store, tmp_path, remote):
    await run(store, tmp_path, records(range(3)), remote.url)
    remote_id = row("2").remote_id
    remote.items[remote_id]["name"] = "changed remotely"
    local = records(range(3), i2="changed locally")
    conflict = conflicts.record(JOB, "2", remote_id, local[2], remote.items[remote_id])

    assert conflicts.resolve(conflict, "remote").state == "synced"
    entry = row("2")
    assert (entry.state, entry.attempts) == ("synced", 0)
    sent = len(remote.requests)
    done = await run(store, tmp_path, local, remote.url)
    assert (done.items_unchanged, done.items_updated) == (3, 0)
    assert remote.requests[sent:] == []  # the remote's version stays
    assert remote.items[remote_id]["name"] == "changed remotely"

    done = await run(store, tmp_path, records(range(3), i2="changed again"), remote.url)
    assert done.items_updated == 1
    assert remote.items[remote_id]["name"] == "changed again"


async def test_a_conflict_on_a_record_the_id_map_never_held_is_mapped_when_resolved(
        store, tmp_path, remote):
    await run(store, tmp_path, records(range(1)), remote.url)
    remote.items["r99"] = {"id": "r99", "key": "5", "name": "found remotely"}
    local = records([5], i5="new locally")
    conflict = conflicts.record(JOB, "5", "r99", local[0], remote.items["r99"])
    conflicts.resolve(conflict, "local")
    assert (row("5").state, row("5").remote_id) == ("pending", "r99")
    done = await run(store, tmp_path, records([0, 5], i5="new locally"), remote.url)
    assert (done.items_updated, done.items_inserted) == (1, 0)  # no second remote record
    assert remote.items["r99"]["name"] == "new locally" and len(remote.items) == 2


async def test_runs_record_state_attempts_and_whether_an_error_is_transient(
        store, tmp_path, remote):
    await fill(store, tmp_path, remote)
    found = {r.local_key: (r.state, transient(r)) for r in IdMap.select()}
    assert found == EXPECTED
    refused, lost, update = row("6"), row("7"), row("2")
    assert refused.error_retryable is False and "400" in refused.last_error
    assert lost.error_retryable is True and lost.attempts == 1 and lost.remote_id is None
    assert update.error_retryable is True and update.remote_id and update.last_error
    assert row("0").last_error is None and row("0").error_retryable is None

    done = await run(store, tmp_path, records(range(8)), remote.url)  # the remote is back
    assert done.items_failed == 0
    assert {r.state for r in IdMap.select()} == {"synced"}
    assert IdMap.select().where(IdMap.error_retryable.is_null(False)).count() == 0
    assert idmap.state_counts()[JOB] == {"pending": 0, "synced": 8, "failed": 0,
                                         "deferred": 0, "deleted": 0}


def test_an_older_store_gains_the_conflicts_table_and_the_retryable_column(
        store, database_url, tmp_path):
    migrate(SchemaMigrator.from_database(store.db).drop_column("id_map", "error_retryable"))
    store.db.drop_tables([SyncConflict])
    store.close()
    reopened = Store.open(database_url, tmp_path / "state")
    try:
        assert "error_retryable" in {c.name for c in reopened.db.get_columns("id_map")}
        assert reopened.db.table_exists("sync_conflicts")
        assert {c.name for c in reopened.db.get_columns("sync_conflicts")} >= {
            "id", "job", "local_key", "remote_id", "local_record", "remote_record", "status",
            "resolution", "created_at", "resolved_at"}
        assert conflicts.record(JOB, "1", None, {"id": "1"}, {}) >= 1
    finally:
        reopened.close()
