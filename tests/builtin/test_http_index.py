"""The ``http_index`` source against a real file server in every listing format."""

from __future__ import annotations

import calendar
import os
import sqlite3
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from pydantic import ValidationError

from syncd.adapters import Batch, Checkpoint, RunContext
from syncd.engine.memory import MemoryTarget
from syncd.engine.reading import batches
from syncd.errors import SourceError
from syncd.plugins import get_pluginmanager
from syncd.remote.http import HttpFactory, RemoteSettings
from syncd.store import Store
from syncd.testing import run_job
from syncd.testing.engine import make_engine
from syncd_builtin.http_index import FIELDS, HttpIndexSource
from tests.fakes.fileserver import FORMATS, FileServer
from tests.syncd_cli import syncd

MTIME = calendar.timegm((2025, 6, 12, 14, 21, 0))  # on the minute: HTML shows no seconds
TREE = {  # in walk order (each folder's names sorted, folders where they sort)
    "Artist/Album/01 - Song.mp3": 10,
    "Artist/Album/02 Second_Song.opus": 2_000,
    "Café del Mar.flac": 123_456,
    "Rock & Roll/100% Pure.mp3": 999,
    "Rock & Roll/deep/er/track.mp3": 7,
    "notes.txt": 0,
    "x" * 60 + ".txt": 5,  # nginx cuts the link text at 50 characters
}
EXACT = ("nginx-json", "nginx-xml", "nginx-html")
SIZES = {name: TREE[name] for name in TREE}


def make_tree(root: Path) -> Path:
    for rel, size in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    (root / ".hidden").write_text("not listed")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("not listed")
    for path in root.rglob("*"):
        os.utime(path, (MTIME, MTIME))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    with FileServer(make_tree(tmp_path / "files")) as running:
        yield running


def context(state: Path, remotes: dict[str, RemoteSettings] | None = None) -> RunContext:
    return RunContext(run_id=1, job="files", log=structlog.get_logger("test"), state_dir=state,
                      http=HttpFactory(remotes))


def source(url: str = "", **options: Any) -> HttpIndexSource:
    return HttpIndexSource(HttpIndexSource.Options(url=url, **options))


def read(src: HttpIndexSource, state: Path, fields: Sequence[str] = FIELDS,
         checkpoint: Checkpoint | None = None, batch_rows: int = 1000,
         remotes: dict[str, RemoteSettings] | None = None) -> list[Batch]:
    src.open(context(state, remotes))
    return list(batches(src, fields, checkpoint, batch_rows))


def records(read_batches: list[Batch], fields: Sequence[str] = FIELDS) -> list[dict[str, Any]]:
    return [dict(zip(fields, row, strict=True)) for b in read_batches for row in b.rows]


def errors(read_batches: list[Batch]) -> list[tuple[str, str, str]]:
    return [(e.item, e.type, e.code) for b in read_batches for e in b.errors]


# -- every format ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_lists_the_same_files(server: FileServer, tmp_path: Path, fmt: str) -> None:
    base = server.base(fmt)
    found = records(read(source(base), tmp_path))
    assert [r["path"] for r in found] == list(TREE)  # hidden names left out, walk order
    for record in found:
        path = record["path"]
        assert record["url"] == base + quote(path, safe="/-._~!$&'()*+,;=:@")
        assert record["name"] == path.rpartition("/")[2]
        assert record["is_available"] is True
        if fmt == "apache-plain":  # a plain list names files, nothing more
            assert (record["size"], record["modified_at"]) == (None, None)
            continue
        assert record["modified_at"] == "2025-06-12T14:21:00Z"
        if fmt in EXACT:
            assert record["size"] == TREE[path]
        else:  # 1.2K, 12M, lighttpd's 0.1K for a few bytes
            assert abs(record["size"] - TREE[path]) <= max(TREE[path] * 0.1, 104), record
    song = found[0]
    assert (song["extension"], song["mime"], song["media_type"]) == ("mp3", "audio/mpeg", "audio")
    assert (song["title"], song["artist"], song["album"]) == ("Song", "Artist", "Album")
    with urllib.request.urlopen(found[2]["url"]) as answer:  # the URL serves the file
        assert len(answer.read()) == TREE["Café del Mar.flac"]


@pytest.mark.parametrize("fmt", ["nginx-json", "nginx-xml", "apache", "lighttpd"])
def test_a_fixed_format_skips_detection(server: FileServer, tmp_path: Path, fmt: str) -> None:
    kind = {"nginx-json": "nginx_json", "nginx-xml": "nginx_xml"}.get(fmt, "html")
    found = records(read(source(server.base(fmt), format=kind), tmp_path))
    assert len(found) == len(TREE)


def test_a_remote_s_base_url_and_a_start_path(server: FileServer, tmp_path: Path) -> None:
    remotes = {"files": RemoteSettings(base_url=server.url + "/nginx-json", concurrency=2)}
    src = HttpIndexSource(HttpIndexSource.Options(remote="files", path="Rock & Roll"))
    found = records(read(src, tmp_path, remotes=remotes))
    assert [r["path"] for r in found] == ["100% Pure.mp3", "deep/er/track.mp3"]
    assert found[0]["url"] == f"{server.url}/nginx-json/Rock%20&%20Roll/100%25%20Pure.mp3"
    assert src.identifier == "files:/Rock & Roll"


# -- depth and patterns ----------------------------------------------------------------


@pytest.mark.parametrize(("depth", "expected", "listed"), [
    (0, ["Café del Mar.flac", "notes.txt", "x" * 60 + ".txt"], 1),
    (1, ["Café del Mar.flac", "Rock & Roll/100% Pure.mp3", "notes.txt", "x" * 60 + ".txt"], 3),
    (3, list(TREE), 6),
])
def test_depth_bounds_the_walk(server: FileServer, tmp_path: Path, depth: int,
                               expected: list[str], listed: int) -> None:
    src = source(server.base("apache"), depth=depth)
    assert [r["path"] for r in records(read(src, tmp_path))] == expected
    assert server.count("GET") == listed == (src.walker.listed if src.walker else -1)


@pytest.mark.parametrize(("patterns", "expected"), [
    (["*.mp3"], ["Artist/Album/01 - Song.mp3", "Rock & Roll/100% Pure.mp3",
                 "Rock & Roll/deep/er/track.mp3"]),
    (["Artist/**"], ["Artist/Album/01 - Song.mp3", "Artist/Album/02 Second_Song.opus"]),
    (["*.txt", "*.flac"], ["Café del Mar.flac", "notes.txt", "x" * 60 + ".txt"]),
])
def test_patterns_select_by_relative_path(server: FileServer, tmp_path: Path,
                                          patterns: list[str], expected: list[str]) -> None:
    src = source(server.base("lighttpd"), patterns=patterns)
    assert [r["path"] for r in records(read(src, tmp_path))] == expected


# -- availability ----------------------------------------------------------------------


def available(server: FileServer, state: Path, **options: Any) -> dict[str, bool]:
    src = source(server.base("nginx-json"), check_available=True, **options)
    return {r["path"]: r["is_available"] for r in records(read(src, state, batch_rows=3))}


def test_head_answers_are_cached_for_the_ttl(server: FileServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert available(server, state, concurrency=5, available_ttl="5m") == dict.fromkeys(
        TREE, True)
    assert server.count("HEAD") == len(TREE)

    server.clear()
    assert available(server, state, available_ttl="5m") == dict.fromkeys(TREE, True)
    assert server.count("HEAD") == 0  # a second run within the TTL sends none

    (server.root / "Café del Mar.flac").write_bytes(b"new")  # changed: asked again
    os.utime(server.root / "Café del Mar.flac", (MTIME, MTIME))
    server.clear()
    server.fail("notes.txt", 404)  # gone for HEAD, still listed (a stale listing)
    result = available(server, state, available_ttl="5m")
    assert [p for m, p in server.requests if m == "HEAD"] == [
        "/nginx-json/Café del Mar.flac"]
    assert result["notes.txt"] is True  # cached, unchanged in the listing

    server.clear()
    server.fail("notes.txt", 404)
    result = available(server, state, available_ttl=0)  # no cache: every file asked
    assert server.count("HEAD") == len(TREE)
    assert result == {**dict.fromkeys(TREE, True), "notes.txt": False}


def test_without_check_available_no_head_is_sent(server: FileServer, tmp_path: Path) -> None:
    found = records(read(source(server.base("apache")), tmp_path))
    assert all(r["is_available"] for r in found) and server.count("HEAD") == 0
    found = records(read(source(server.base("apache"), check_available=True), tmp_path,
                         fields=["url", "path"]), ["url", "path"])  # no is_available: no HEAD
    assert len(found) == len(TREE) and server.count("HEAD") == 0


def test_a_transient_head_failure_is_retried(server: FileServer, tmp_path: Path) -> None:
    server.fail("notes.txt", 503, times=1, retry_after=0)
    assert available(server, tmp_path, available_ttl=0)["notes.txt"] is True
    assert server.count("HEAD", "/nginx-json/notes.txt") == 2


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(404, "system"), (403, "auth")])
def test_a_folder_that_cannot_be_listed_is_an_item_error(server: FileServer, tmp_path: Path,
                                                         status: int, kind: str) -> None:
    server.fail("Rock & Roll/", status)
    read_batches = read(source(server.base("nginx-html")), tmp_path, batch_rows=2)
    assert [r["path"] for r in records(read_batches)] == [
        p for p in TREE if not p.startswith("Rock")]
    assert errors(read_batches) == [("Rock & Roll", kind, f"http_{status}")]


def test_a_listing_that_cannot_be_parsed_names_its_url(server: FileServer,
                                                       tmp_path: Path) -> None:
    server.garble("Artist/Album/")
    read_batches = read(source(server.base("apache")), tmp_path)
    [error] = [e for b in read_batches for e in b.errors]
    assert (error.type, error.code, error.item) == ("parsing", "bad_listing", "Artist/Album")
    assert f"{server.base('apache')}Artist/Album/ is no folder listing" in error.message
    assert len(records(read_batches)) == len(TREE) - 2


def test_a_folder_answering_503_is_asked_again(server: FileServer, tmp_path: Path) -> None:
    server.fail("Artist/Album/", 503, times=1, retry_after=0)
    assert len(records(read(source(server.base("nginx-json")), tmp_path))) == len(TREE)
    assert server.count("GET", "/nginx-json/Artist/Album/") == 2


def test_the_start_folder_failing_fails_the_read(server: FileServer, tmp_path: Path) -> None:
    server.garble("")
    with pytest.raises(SourceError, match=f"{server.base('lighttpd')} is no folder listing"):
        read(source(server.base("lighttpd")), tmp_path)
    with pytest.raises(SourceError, match="answered 404"):
        read(source(server.base("lighttpd") + "nowhere/"), tmp_path)


def test_bad_options_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="either `remote` or `url`"):
        HttpIndexSource.Options(remote="files", url="http://example.com/")
    with pytest.raises(ValidationError, match="no http:// or https:// URL"):
        HttpIndexSource.Options(url="ftp://example.com/")
    with pytest.raises(ValidationError, match="duration"):
        HttpIndexSource.Options(url="http://example.com/", available_ttl="soon")
    with pytest.raises(ValidationError, match="bad pattern"):
        HttpIndexSource.Options(url="http://example.com/", patterns=["[z-a]"])
    with pytest.raises(SourceError, match="set `remote` or `url`"):
        HttpIndexSource(HttpIndexSource.Options())


# -- resuming --------------------------------------------------------------------------


FOLDERS = sorted({p.rpartition("/")[0] + "/" for p in TREE if "/" in p}
                 | {"Rock & Roll/deep/", "Rock & Roll/"})


def test_resuming_at_every_checkpoint_reads_the_rest_and_relists_no_finished_folder(
        server: FileServer, tmp_path: Path) -> None:
    full = read(source(server.base("nginx-xml")), tmp_path, batch_rows=2)
    paths = [r["path"] for r in records(full)]
    skipped = 0
    for done in range(1, len(full)):
        server.clear()
        rest = read(source(server.base("nginx-xml")), tmp_path, batch_rows=2,
                    checkpoint=full[done - 1].checkpoint)
        committed = paths[:sum(len(b.rows) for b in full[:done])]
        assert committed + [r["path"] for r in records(rest)] == paths
        listed = {path.removeprefix("/nginx-xml/") for _, path in server.requests}
        finished = [f for f in FOLDERS if not committed[-1].startswith(f)
                    and all(p in committed for p in TREE if p.startswith(f))]
        assert not listed & set(finished), (committed[-1], sorted(listed))
        skipped += len(finished)
    assert skipped  # some resume point had whole folders behind it


# -- through real jobs -----------------------------------------------------------------


def test_an_interrupted_run_resumes_from_its_checkpoint(server: FileServer, store: Store,
                                                        tmp_path: Path) -> None:
    """As after a kill: the run's checkpoint is committed, the next start goes on."""
    url = server.base("apache")
    job = {"source": {"type": "http_index", "url": url},
           "target": {"type": "memory", "table": "resumed", "key": ["url"]},
           "mapping": {"url": "url", "path": "path"}, "batch_rows": 2}
    engine = make_engine(store, tmp_path / "state", {"files": job}, adapters=[HttpIndexSource])
    run_id = store.create_run(job="files", trigger="cli", source_type="http_index",
                              source_identifier=url)
    store.start(run_id, None)
    store.advance(run_id, {"processed": 3}, {"index": 3, "path": "Café del Mar.flac"})
    store.finish(run_id, "pending", None)
    try:
        run, outcome = run_job(engine, "files", trigger="cli")
        assert outcome.status == "completed", outcome.error
        assert (run.id, run.items_inserted) == (run_id, len(TREE) - 3)
        listed = [p for m, p in server.requests if m == "GET"]
        assert "/apache/Artist/" not in listed and "/apache/Artist/Album/" not in listed
        assert sorted(MemoryTarget.tables["resumed"]) == sorted(
            (url + quote(p, safe="/-._~!$&'()*+,;=:@"),) for p in list(TREE)[3:])
    finally:
        MemoryTarget.tables.pop("resumed", None)


CONFIG = """
[daemon]
state_dir = "{tmp}/state"
log_format = "json"
[usb]
enabled = false
[jobs.files]
on_missing = "mark_unavailable"
batch_rows = 3
[jobs.files.source]
type = "http_index"
url = "{url}"
check_available = true
available_ttl = "5m"
concurrency = 5
[jobs.files.target]
type = "sql"
table = "media_files"
key = ["url"]
[jobs.files.mapping]
url = "url"
path = "path"
size = "size"
modified_at = "modified_at"
online = "is_available"
"""


def test_a_file_removed_from_the_server_is_marked_unavailable_by_a_full_sync(
        server: FileServer, tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.format(tmp=tmp_path, url=server.base("nginx-html")))
    first = syncd("sync", "files", "--config", str(config), timeout=60)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(TREE)} processed, {len(TREE)} inserted" in first.stdout
    assert server.count("HEAD") == len(TREE)

    (server.root / "notes.txt").unlink()
    server.clear()
    second = syncd("sync", "files", "--config", str(config), timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 missing" in second.stdout, second.stdout
    assert server.count("HEAD") == 0  # every answer cached for 5 minutes
    db = sqlite3.connect(tmp_path / "state" / "syncd.db")
    rows = dict(db.execute("SELECT path, is_available FROM media_files").fetchall())
    assert rows == {**dict.fromkeys(TREE, 1), "notes.txt": 0}
    assert db.execute("SELECT DISTINCT online FROM media_files").fetchall() == [("true",)]

    server.fail("Artist/", 404)  # a listing fails: absence proves nothing this time
    (server.root / "Café del Mar.flac").unlink()
    third = syncd("sync", "files", "--config", str(config), timeout=60)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "system/http_404: Artist" in third.stdout, third.stdout
    rows = dict(db.execute("SELECT path, is_available FROM media_files").fetchall())
    assert rows["Café del Mar.flac"] == 1


def test_the_source_is_registered_through_its_entry_point() -> None:
    _, registry = get_pluginmanager()
    assert registry.sources["http_index"] is HttpIndexSource
    assert registry.origins[("source", "http_index")].distribution.startswith("syncd ")
