"""The SQL target and the store on SQLite, PostgreSQL and MariaDB, against real servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import Engine, Request, memory, resolve_jobs
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd_builtin import adapters, sql_values
from tests.conftest import BACKENDS

pytestmark = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


def songs(n: int, **renamed: str) -> list[dict[str, Any]]:
    out = [{"id": f"s{i}", "song": f"Song {i}", "by": f"Artist {i % 7}", "genre": "pop"}
           for i in range(n)]
    for key, title in renamed.items():
        out[int(key.removeprefix("s"))]["song"] = title
    return out


def music_job(recs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"source": {"type": "memory", "records": recs},
            "target": {"type": "sql", "table": "content_index", "key": ["external_id"]},
            "mapping": {"external_id": "id", "title": "song", "artist": "by", "genre": "genre"},
            "constants": {"content_type": "music"}, "batch_rows": 4, **extra}


def engine_for(store: Store, tmp_path: Path, jobs: dict[str, Any]) -> Engine:
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False, plugins=(memory, adapters.sql))
    return Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")


def rows(store: Store, sql: str) -> list[tuple]:
    return [tuple(r) for r in store.db.execute_sql(sql).fetchall()]


async def sync(store: Store, tmp_path: Path, job: dict[str, Any], name: str = "music",
               **request: Any):
    run_id, outcome = await engine_for(store, tmp_path, {name: job}).run(
        Request(name, "cli", **request))
    assert outcome.status == "completed", outcome.error
    return store.get_run(run_id)


async def test_upserts_by_key_and_counts_each_outcome(store, tmp_path):
    run = await sync(store, tmp_path, music_job(songs(10)))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (10, 0, 0)
    assert rows(store, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index") == [
        (10, 10)]

    run = await sync(store, tmp_path, music_job(songs(10)))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 0, 10)

    run = await sync(store, tmp_path, music_job(songs(12, s2="Changed")))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (2, 1, 9)
    assert rows(store, "SELECT title, content_type, sync_job FROM content_index "
                       "WHERE external_id = 's2'") == [("Changed", "music", "music")]


async def test_an_update_keeps_the_rows_id_and_first_seen_at(store, tmp_path):
    """However a backend writes updates (MariaDB: INSERT … ON DUPLICATE KEY UPDATE)."""
    await sync(store, tmp_path, music_job(songs(10)))
    query = ("SELECT external_id, id, first_seen_at, last_synced_at, title FROM content_index "
             "ORDER BY external_id")
    before = {r[0]: r[1:] for r in rows(store, query)}
    run = await sync(store, tmp_path, music_job(songs(10, s2="New", s7="Newer")))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 2, 8)
    after = {r[0]: r[1:] for r in rows(store, query)}
    for key in ("s2", "s7"):
        assert after[key][:2] == before[key][:2]  # id, first_seen_at
        assert after[key][2] >= before[key][2] and after[key][3].startswith("New")
    assert {k: v for k, v in after.items() if k not in ("s2", "s7")} == {
        k: v for k, v in before.items() if k not in ("s2", "s7")}
    assert rows(store, "SELECT COUNT(*) FROM content_index") == [(10,)]


async def test_new_batches_are_inserted_blind_until_one_holds_a_stored_key(store, tmp_path):
    """After a batch of new keys only, the next is inserted without a lookup; a stored
    key among its rows fails that insert, and the batch is looked up and counted."""
    recs = songs(12)
    await sync(store, tmp_path, music_job(recs[8:]))
    run = await sync(store, tmp_path, music_job([*recs[:8], recs[8], {**recs[9], "song": "New"},
                                                 *recs[10:]]))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (8, 1, 3)
    assert rows(store, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index") == [
        (12, 12)]
    assert rows(store, "SELECT title FROM content_index WHERE external_id = 's9'") == [("New",)]


async def test_unchanged_rows_are_not_rewritten(store, tmp_path):
    await sync(store, tmp_path, music_job(songs(5)))
    before = rows(store, "SELECT external_id, last_synced_at FROM content_index "
                         "ORDER BY external_id")
    await sync(store, tmp_path, music_job(songs(5)))
    after = rows(store, "SELECT external_id, last_synced_at FROM content_index "
                        "ORDER BY external_id")
    assert before == after


async def test_a_key_repeated_in_one_batch_is_reported_and_its_first_version_kept(
        store, tmp_path):
    recs = [*songs(3), {"id": "s1", "song": "Again", "by": "x", "genre": "pop"}]
    run = await sync(store, tmp_path, music_job(recs))
    assert (run.items_inserted, run.items_updated, run.items_failed) == (3, 0, 1)
    [error] = store.errors_of(run.id)
    assert (error.error_code, error.item_identifier) == ("duplicate_key", "record 3")
    assert rows(store, "SELECT title FROM content_index WHERE external_id = 's1'") == [
        ("Song 1",)]


async def test_mark_unavailable_then_available_again(store, tmp_path):
    job = music_job(songs(6), on_missing="mark_unavailable")
    await sync(store, tmp_path, job)
    run = await sync(store, tmp_path, {**job, "source": {"type": "memory",
                                                         "records": songs(4)}})
    assert run.items_missing == 2
    assert rows(store, "SELECT external_id FROM content_index WHERE NOT is_available "
                       "ORDER BY external_id") == [("s4",), ("s5",)]
    run = await sync(store, tmp_path, job)
    assert run.items_updated == 2 and run.items_missing == 0
    assert rows(store, "SELECT COUNT(*) FROM content_index WHERE is_available") == [(6,)]


async def test_delete_missing_rows_only_of_this_job(store, tmp_path):
    other = music_job([{"id": "x1", "song": "Other", "by": "o", "genre": "jazz"}])
    await sync(store, tmp_path, other, name="other")
    job = music_job(songs(3), on_missing="delete", max_missing=2)
    await sync(store, tmp_path, job)
    run = await sync(store, tmp_path, {**job, "source": {"type": "memory",
                                                         "records": songs(1)}})
    assert run.items_missing == 2
    assert rows(store, "SELECT external_id FROM content_index ORDER BY external_id") == [
        ("s0",), ("x1",)]


async def test_dry_run_writes_nothing(store, tmp_path):
    run = await sync(store, tmp_path, music_job(songs(3)), dry_run=True)
    assert run.items_inserted == 3 and run.dry_run
    assert rows(store, "SELECT COUNT(*) FROM content_index") == [(0,)]


async def test_other_tables_are_made_from_the_mapping_and_grow_with_it(store, tmp_path):
    recs = [{"sku": f"k{i}", "shop": "a", "price": str(i), "colour": "red"} for i in range(3)]
    job = {"source": {"type": "memory", "records": recs},
           "target": {"type": "sql", "table": "products", "key": ["sku", "shop"]},
           "mapping": {"sku": "sku", "shop": "shop", "price": "price"}}
    run = await sync(store, tmp_path, job, name="products")
    assert run.items_inserted == 3
    job["mapping"] = {**job["mapping"], "colour": "colour"}
    run = await sync(store, tmp_path, job, name="products")
    assert run.items_updated == 3  # every record gained a field
    assert rows(store, "SELECT sku, shop, price, colour FROM products ORDER BY sku") == [
        ("k0", "a", "0", "red"), ("k1", "a", "1", "red"), ("k2", "a", "2", "red")]
    columns = {c.name for c in store.db.get_columns("products")}
    assert {"content_hash", "last_synced_at", "is_available"} <= columns


@pytest.mark.parametrize("key", [["sku"], ["sku", "shop"]])
async def test_keys_with_quotes_backslashes_and_percents_are_found_again(store, tmp_path,
                                                                        key):
    """Keys are looked up as the statement's text on MySQL: escaped, never formatted."""
    odd = ["it's", 'say "hi"', "back\\slash", "50%", "%s", "tab\there", "ünï 🎵", "a\x01b"]
    recs = [{"sku": f"{v}{i}", "shop": f"{v}", "price": str(i)} for i, v in enumerate(odd)]
    job = {"source": {"type": "memory", "records": recs},
           "target": {"type": "sql", "table": "odd_products", "key": key},
           "mapping": {"sku": "sku", "shop": "shop", "price": "price"}}
    run = await sync(store, tmp_path, job, name="odd")
    assert run.items_inserted == len(odd)
    run = await sync(store, tmp_path, job, name="odd")
    assert (run.items_unchanged, run.items_inserted) == (len(odd), 0)


async def test_a_database_of_an_older_version_is_upgraded_in_place(database_url, tmp_path):
    store = Store.open(database_url, tmp_path / "state")
    run_id = store.create_run(job="old", trigger="cli", source_type="csv",
                              source_identifier="/x")
    # pretend an older syncd made this database: without two newer columns
    for column in ("items_missing", "job_spec"):
        store.db.execute_sql(f"ALTER TABLE sync_runs DROP COLUMN {column}")
    store.close()
    store = Store.open(database_url, tmp_path / "state")
    columns = {c.name for c in store.db.get_columns("sync_runs")}
    assert {"items_missing", "job_spec"} <= columns
    assert store.get_run(run_id).job == "old"
    store.close()


async def test_a_nul_byte_fails_its_row_alike_on_every_backend(store, tmp_path):
    recs = songs(3)
    recs[1]["song"] = "bad\x00title"
    run = await sync(store, tmp_path, music_job(recs))
    assert (run.items_inserted, run.items_failed) == (2, 1)
    [error] = store.errors_of(run.id)
    assert (error.error_type, error.error_code, error.item_identifier) == (
        "validation", "nul_byte", "record 1")


async def test_a_row_the_database_rejects_fails_alone(store, tmp_path, database_url):
    if store.dialect != "mysql":
        pytest.skip("only MariaDB limits key length (VARCHAR(191)) here")
    recs = songs(3)
    recs[2]["id"] = "k" * 300
    run = await sync(store, tmp_path, music_job(recs))
    assert (run.items_inserted, run.items_failed) == (2, 1)
    [error] = store.errors_of(run.id)
    assert error.error_type == "target" and error.item_identifier == "record 2"
    assert rows(store, "SELECT COUNT(*) FROM content_index") == [(2,)]


async def test_keys_and_values_that_are_not_strings_match_what_the_table_stores(store,
                                                                                 tmp_path):
    recs = [{"id": i, "song": f"Song {i}", "by": i * 1.5, "genre": [{"b": 1, "a": i}]}
            for i in range(10)]
    job = music_job(recs, on_missing="mark_unavailable")
    run = await sync(store, tmp_path, job)
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (10, 0, 0)
    run = await sync(store, tmp_path, job)
    assert (run.items_inserted, run.items_updated, run.items_unchanged,
            run.items_missing) == (0, 0, 10, 0)
    assert rows(store, "SELECT external_id, artist, genre FROM content_index "
                       "WHERE external_id = '7'") == [("7", "10.5", '[{"a": 7, "b": 1}]')]
    assert rows(store, "SELECT COUNT(*) FROM content_index WHERE is_available") == [(10,)]


async def test_constants_count_in_the_key_and_the_hash_as_if_they_were_columns(store,
                                                                               tmp_path):
    """Constants are hashed after a row's values without being added to the rows that
    are only compared: the digest is still that of the whole stored row."""
    job = music_job(songs(6), target={"type": "sql", "table": "catalog",
                                      "key": ["content_type", "external_id"]})
    run = await sync(store, tmp_path, job)
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (6, 0, 0)
    run = await sync(store, tmp_path, {**job, "source": {"type": "memory",
                                                         "records": songs(6, s3="New")}})
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 1, 5)
    assert rows(store, "SELECT title, content_type FROM catalog WHERE external_id = 's3'"
                ) == [("New", "music")]
    assert rows(store, "SELECT content_hash FROM catalog WHERE external_id = 's0'") == [
        (sql_values.content_hash(("s0", "Song 0", "Artist 0", "pop", "music")),)]

    run = await sync(store, tmp_path, music_job(songs(6)))  # the constant changes
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (6, 0, 0)
    run = await sync(store, tmp_path, {**music_job(songs(6)), "constants": {
        "content_type": "podcast"}})
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 6, 0)


async def test_values_a_batch_shares_are_stored_as_if_bound_row_by_row(store, tmp_path):
    """SQLite's first sync writes the constants and bookkeeping into the upsert's text:
    quoted, they store what binding them does (a later update binds them)."""
    odd = "it's \"odd\"; -- '' \\ \u00fc ?1 :x"
    job = {**music_job(songs(6)), "constants": {"content_type": odd}}
    run = await sync(store, tmp_path, job)
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (6, 0, 0)
    run = await sync(store, tmp_path, {**job, "source": {"type": "memory",
                                                         "records": songs(6, s3="New")}})
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 1, 5)
    columns = "content_type, is_available, sync_job, sync_scope, source_type"
    if store.dialect == "sqlite":
        columns += ", typeof(content_type), typeof(is_available), typeof(first_seen_at)"
    inlined, bound = rows(store, f"SELECT {columns} FROM content_index WHERE external_id "
                                 "IN ('s0', 's3') ORDER BY external_id")
    assert inlined == bound
    assert inlined[0] == odd and inlined[1]


def csv_engine(store: Store, tmp_path: Path, body: bytes) -> Engine:
    (tmp_path / "music.csv").write_bytes(body)
    job = {"source": {"type": "csv", "path": str(tmp_path / "music.csv")},
           "target": {"type": "sql", "key": ["external_id"]},
           "mapping": {"external_id": "id", "title": "song"}, "batch_rows": 4}
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": {"m": job}})
    _, registry = get_pluginmanager(load_entrypoints=False,
                                    plugins=(memory, adapters.sql, adapters.csv))
    return Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")


async def test_counters_are_exact_with_nul_rows_on_first_sync_and_re_sync(store, tmp_path):
    body = b"id,song\n" + b"".join(
        b"%d,Song %d%s\n" % (i, i, b"\x00x" if i in (2, 5, 6) else b"") for i in range(10))
    for expected in [(7, 0, 0), (0, 0, 7)]:
        run_id, outcome = await csv_engine(store, tmp_path, body).run(Request("m", "cli"))
        assert outcome.status == "completed", outcome.error
        counts = store.counters(store.get_run(run_id))
        assert (counts["inserted"], counts["updated"], counts["unchanged"]) == expected
        assert (counts["processed"], counts["failed"]) == (10, 3)
        assert counts["processed"] == sum(counts[k] for k in (
            "inserted", "updated", "unchanged", "skipped", "failed"))
        assert min(counts.values()) >= 0
        assert [e.item_identifier for e in store.errors_of(run_id)] == [
            "line 4", "line 7", "line 8"]


async def test_a_large_batch_stores_every_character_exactly(store, tmp_path):
    """600 rows in one batch: PostgreSQL sends them with COPY (text format), where tabs,
    newlines, carriage returns, backslashes and a literal \\N must come back unchanged."""
    tricky = ["tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\N", "", "ünï 🎵"]
    recs = [{"id": f"k{i}", "song": tricky[i % len(tricky)] + str(i), "by": "",
             "genre": tricky[(i + 3) % len(tricky)]} for i in range(600)]
    run = await sync(store, tmp_path, music_job(recs, batch_rows=1000))
    assert (run.items_inserted, run.items_failed) == (600, 0)
    stored = {r[0]: r[1:] for r in rows(store, "SELECT external_id, title, artist, genre "
                                               "FROM content_index")}
    assert stored == {r["id"]: (r["song"], r["by"], r["genre"]) for r in recs}
    assert rows(store, "SELECT MIN(id), MAX(id) FROM content_index") == [(1, 600)]
    run = await sync(store, tmp_path, music_job(recs, batch_rows=1000))
    assert (run.items_inserted, run.items_unchanged) == (0, 600)
