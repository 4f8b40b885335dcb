"""MariaDB: batches of new rows go in with ``LOAD DATA LOCAL INFILE``, and the server
gets no file but the batch (a real MariaDB server)."""

from __future__ import annotations

import tempfile
from urllib.parse import quote

import pytest

from syncd.store import Store
from syncd.store.local_files import allowed
from tests.builtin.test_sql_target import music_job, rows, songs, sync

pytestmark = [pytest.mark.mysql, pytest.mark.parametrize("database_url", ["mysql"],
                                                          indirect=True)]

TRICKY = ["tab\there", "new\nline", "cr\rlf\r\n", "back\\slash", "\\N", "", "ünï 🎵",
          "quote' \"double\"", "ctrl-z \x1a end"]


def loads(store: Store) -> int:
    """``LOAD DATA`` statements the server has run, from every connection."""
    return int(rows(store, "SHOW GLOBAL STATUS LIKE 'Com_load'")[0][1])


async def test_new_rows_are_loaded_and_stored_exactly(store, tmp_path):
    recs = [{"id": f"k{i}", "song": TRICKY[i % len(TRICKY)] + str(i), "by": "",
             "genre": TRICKY[(i + 3) % len(TRICKY)]} for i in range(1200)]
    before = loads(store)
    run = await sync(store, tmp_path, music_job(recs, batch_rows=600))
    assert (run.items_inserted, run.items_failed) == (1200, 0)
    assert loads(store) - before >= 2  # both batches went through LOAD DATA
    stored = {r[0]: r[1:] for r in rows(store, "SELECT external_id, title, artist, genre, "
                                               "content_type, is_available "
                                               "FROM content_index")}
    assert stored == {r["id"]: (r["song"], r["by"], r["genre"], "music", 1) for r in recs}
    run = await sync(store, tmp_path, music_job(recs, batch_rows=600))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (0, 0, 1200)


async def test_a_loaded_batch_meeting_a_stored_key_is_counted_exactly(store, tmp_path):
    """After a batch of new keys the next is loaded unlooked; a stored key in it makes
    the server warn, the load rolls back, and the batch is looked up instead."""
    await sync(store, tmp_path, music_job(songs(600), batch_rows=600))
    later = [*songs(1500)[600:1200], *songs(1500)[1200:], *songs(300)]
    run = await sync(store, tmp_path, music_job(later, batch_rows=600))
    assert (run.items_inserted, run.items_updated, run.items_unchanged) == (900, 0, 300)
    assert rows(store, "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index"
                ) == [(1500, 1500)]


async def test_a_row_the_load_would_truncate_fails_alone(store, tmp_path):
    recs = songs(600)
    recs[7]["id"] = "k" * 300  # longer than the key column: LOAD DATA would cut it
    run = await sync(store, tmp_path, music_job(recs, batch_rows=600))
    assert (run.items_inserted, run.items_failed) == (599, 1)
    [error] = store.errors_of(run.id)
    assert error.error_type == "target" and error.item_identifier == "record 7"
    assert rows(store, "SELECT COUNT(*) FROM content_index WHERE LEFT(external_id, 3) = 'kkk'"
                ) == [(0,)]


def test_the_server_is_sent_no_file_it_was_not_given(store, tmp_path):
    """A server that asks for another file (here: a statement naming one) gets none."""
    secret = tmp_path / "secret.txt"
    secret.write_text("token\n")
    store.db.execute_sql("CREATE TABLE leak (line TEXT)")
    load = f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE leak"
    with pytest.raises(Exception, match="refused to send local file"):
        store.db.execute_sql(load)
    store.db.close()
    with allowed(store.db.connection(), str(tmp_path / "batch.tsv")) as sending:
        assert sending
        with pytest.raises(Exception, match="refused to send local file"):
            store.db.execute_sql(load)
    store.db.close()
    assert rows(store, "SELECT COUNT(*) FROM leak") == [(0,)]


async def test_rows_load_alike_where_backslashes_do_not_escape(database_url, tmp_path):
    """With NO_BACKSLASH_ESCAPES the statement's own escapes change meaning: the load's
    separators are written as hex literals, and the file is read as before."""
    mode = quote("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
    store = Store.open(f"{database_url}?init_command={mode}", tmp_path / "state")
    try:
        recs = [{"id": f"k{i}", "song": TRICKY[i % len(TRICKY)] + "\\" + str(i), "by": "",
                 "genre": "\\N"} for i in range(1200)]
        before = loads(store)
        run = await sync(store, tmp_path, music_job(recs, batch_rows=600))
        assert (run.items_inserted, run.items_failed) == (1200, 0)
        assert loads(store) - before >= 2  # a load that failed is not tried again
        stored = dict(rows(store, "SELECT external_id, title FROM content_index"))
        assert stored == {r["id"]: r["song"] for r in recs}
        assert rows(store, "SELECT DISTINCT genre FROM content_index") == [("\\N",)]
    finally:
        store.close()


async def test_a_server_that_refuses_local_files_gets_inserts(store, tmp_path):
    [(_, was)] = rows(store, "SHOW GLOBAL VARIABLES LIKE 'local_infile'")
    store.db.execute_sql("SET GLOBAL local_infile = 0")
    try:
        run = await sync(store, tmp_path, music_job(songs(1200), batch_rows=600))
    finally:
        store.db.execute_sql(f"SET GLOBAL local_infile = {1 if was == 'ON' else 0}")
    assert (run.items_inserted, run.items_failed) == (1200, 0)
    assert rows(store, "SELECT COUNT(*) FROM content_index") == [(1200,)]


async def test_without_a_writable_temporary_folder_rows_go_as_inserts(store, tmp_path,
                                                                     monkeypatch):
    before = loads(store)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    run = await sync(store, tmp_path, music_job(songs(1200), batch_rows=600))
    assert (run.items_inserted, run.items_failed) == (1200, 0)
    assert loads(store) == before  # no load was tried
    assert rows(store, "SELECT COUNT(*) FROM content_index") == [(1200,)]
