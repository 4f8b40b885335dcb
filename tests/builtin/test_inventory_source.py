"""The inventory source on real folders: records, guesses, snapshots, resuming, scope."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from syncd.adapters import Batch, Checkpoint
from syncd.config import validate
from syncd.engine import Engine, Request, resolve_jobs
from syncd.errors import JobError, SourceError
from syncd.plugins import get_pluginmanager
from syncd.store import Store
from syncd_builtin import adapters
from syncd_builtin.inventory_source import FIELDS, InventorySource, write_snapshot
from tests.conftest import BACKENDS

TREE = (
    "Artist/Album/01 - Song.mp3",
    "Artist/Album/02 Second_Song.opus",
    "Other - Tune.flac",
    "notes.txt",
    "video/clip.mkv",
)  # in walk order


def make_tree(root: Path) -> Path:
    """``TREE``, plus what the walk must leave out: hidden names, lost+found, symlinks."""
    for i, rel in enumerate(TREE):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (i + 1))
    (root / ".hidden").write_text("secret")
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.jpg").write_text("t")
    (root / "lost+found").mkdir()
    (root / "lost+found" / "#1234").write_text("orphan")
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    (outside / "elsewhere.mp3").write_text("out")
    (root / "out.mp3").symlink_to(outside / "elsewhere.mp3")
    (root / "out-dir").symlink_to(outside)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "music")


def read(
    path: Path,
    fields: Sequence[str] = FIELDS,
    checkpoint: Checkpoint | None = None,
    batch_rows: int = 1000,
    **options: Any,
) -> list[Batch]:
    source = InventorySource(InventorySource.Options(path=str(path), **options))
    return list(source.read(fields, checkpoint, batch_rows))


def records(path: Path, **options: Any) -> list[dict[str, Any]]:
    return [
        dict(zip(FIELDS, row, strict=True)) for batch in read(path, **options) for row in batch.rows
    ]


def paths(path: Path, **options: Any) -> list[str]:
    return [r["path"] for r in records(path, **options)]


# -- records ---------------------------------------------------------------------


def test_records_of_a_folder_with_their_guesses(tree):
    scope = str(tree.resolve())
    by_path = {r["path"]: r for r in records(tree)}
    assert list(by_path) == list(TREE)  # sorted walk; hidden, lost+found, symlinks left out

    song = by_path["Artist/Album/01 - Song.mp3"]
    assert song == {
        "id": f"{scope}:Artist/Album/01 - Song.mp3",
        "path": "Artist/Album/01 - Song.mp3",
        "name": "01 - Song.mp3",
        "extension": "mp3",
        "size": 1,
        "mtime": song["mtime"],
        "mime": "audio/mpeg",
        "media_type": "audio",
        "title": "Song",
        "artist": "Artist",
        "album": "Album",
        "device": scope,
    }
    assert song["mtime"].endswith("Z") and song["mtime"][:4].isdigit()
    assert [
        by_path["Artist/Album/02 Second_Song.opus"][k] for k in ("title", "artist", "album", "mime")
    ] == ["Second Song", "Artist", "Album", "audio/opus"]
    assert [by_path["Other - Tune.flac"][k] for k in ("title", "artist", "album", "mime")] == [
        "Tune",
        "Other",
        "",
        "audio/flac",
    ]
    assert [by_path["video/clip.mkv"][k] for k in ("title", "artist", "media_type", "mime")] == [
        "clip",
        "",
        "video",
        "video/x-matroska",
    ]
    assert [by_path["notes.txt"][k] for k in ("title", "extension", "media_type", "size")] == [
        "notes",
        "txt",
        "text",
        4,
    ]


def test_symlinks_are_followed_only_when_asked_and_only_inside_the_folder(tree):
    (tree / "video" / "alias.mkv").symlink_to(tree / "video" / "clip.mkv")
    (tree / "Artist" / "Album" / "loop").symlink_to(tree / "Artist")
    assert paths(tree) == list(TREE)
    followed = paths(tree, follow_symlinks=True)
    # Artist/Album/loop leads back to Artist, a folder being walked: not entered
    assert "video/alias.mkv" in followed
    assert "Artist/Album/loop/Album/01 - Song.mp3" not in followed
    assert not [p for p in followed if p.startswith("out")]  # out of the tree: never


@pytest.mark.parametrize(
    ("name", "title", "artist", "album"),
    [
        ("Artist/Album/01 - Song.mp3", "Song", "Artist", "Album"),
        ("Artist/Album/07. Intro.flac", "Intro", "Artist", "Album"),
        ("Artist/Album/03 Three Words.m4a", "Three Words", "Artist", "Album"),
        ("Artist/Album/04 - Guest - Duet.mp3", "Duet", "Guest", "Album"),
        ("Other - Tune.flac", "Tune", "Other", ""),
        (
            "99 Luftballons.mp3",
            "99 Luftballons",
            "",
            "",
        ),  # a bare number is no track outside albums
        ("12. Twelve.ogg", "Twelve", "", ""),
        ("some_file_name.txt", "some file name", "", ""),
        ("Report - Final.pdf", "Report - Final", "", ""),  # artists only for audio and video
        ("Shows/Season 1/01 - Pilot.mkv", "Pilot", "Shows", "Season 1"),
        ("README", "README", "", ""),
    ],
)
def test_title_artist_and_album_are_guessed_from_the_name(tmp_path, name, title, artist, album):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("x")
    [record] = records(tmp_path)
    assert (record["title"], record["artist"], record["album"]) == (title, artist, album)


def test_media_types_come_from_the_extension(tmp_path):
    for name in ("a.FLAC", "b.m4a", "c.opus", "d.mkv", "e.jpg", "f.bin", "g"):
        (tmp_path / name).write_text("x")
    assert [(r["mime"], r["media_type"], r["extension"]) for r in records(tmp_path)] == [
        ("audio/flac", "audio", "flac"),
        ("audio/mp4", "audio", "m4a"),
        ("audio/opus", "audio", "opus"),
        ("video/x-matroska", "video", "mkv"),
        ("image/jpeg", "image", "jpg"),
        ("application/octet-stream", "application", "bin"),
        ("application/octet-stream", "application", ""),
    ]


def test_a_name_that_is_not_utf8_gets_a_stable_printable_path(tmp_path):
    os.close(os.open(os.fsencode(tmp_path) + b"/caf\xe9.mp3", os.O_CREAT | os.O_WRONLY))
    [record] = records(tmp_path)
    assert record["path"] == "caf\\xe9.mp3" and record["title"] == "caf\\xe9"


# -- patterns and depth ------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*"], list(TREE)),
        (["*.mp3", "*.flac"], ["Artist/Album/01 - Song.mp3", "Other - Tune.flac"]),
        (["video/*"], ["video/clip.mkv"]),
        (["*/*"], ["video/clip.mkv"]),
        (["**/*.opus"], ["Artist/Album/02 Second_Song.opus"]),
        (["Artist/**"], ["Artist/Album/01 - Song.mp3", "Artist/Album/02 Second_Song.opus"]),
        (["**/0[!2]*"], ["Artist/Album/01 - Song.mp3"]),
        (["n?tes.txt", "missing/*"], ["notes.txt"]),
    ],
)
def test_patterns_select_by_relative_path(tree, patterns, expected):
    assert paths(tree, patterns=patterns) == expected


@pytest.mark.parametrize(
    ("max_depth", "expected"),
    [
        (0, ["Other - Tune.flac", "notes.txt"]),
        (1, ["Other - Tune.flac", "notes.txt", "video/clip.mkv"]),
        (2, list(TREE)),
    ],
)
def test_max_depth_bounds_the_walk(tree, max_depth, expected):
    assert paths(tree, max_depth=max_depth) == expected


def test_bad_options_and_paths_are_clear_errors(tree, tmp_path):
    with pytest.raises(ValidationError, match="patterns"):
        InventorySource.Options(patterns=[])
    with pytest.raises(ValidationError, match="max_depth"):
        InventorySource.Options(max_depth=-1)
    with pytest.raises(ValidationError, match="extra"):
        InventorySource.Options(path=str(tree), recursive=True)
    with pytest.raises(SourceError, match="no folder"):
        InventorySource(InventorySource.Options())
    with pytest.raises(SourceError, match="cannot read"):
        read(tmp_path / "missing")
    (tmp_path / "plain.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(SourceError, match="neither a folder nor an inventory snapshot"):
        read(tmp_path / "plain.jsonl")
    with pytest.raises(JobError, match="no field 'song'"):
        read(tree, ["id", "song"])


# -- snapshots ---------------------------------------------------------------------


def test_a_snapshot_reads_exactly_like_the_folder_it_lists(tree, tmp_path):
    out = tmp_path / "drive.jsonl"
    device = {"uuid": "1234-ABCD", "label": "MUSIC", "serial": "S1"}
    assert write_snapshot(tree, out, device) == len(TREE)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {
        "syncd_inventory": 1,
        "device": device,
        "scope": "1234-ABCD",
        "root": str(tree.resolve()),
    }
    assert [line["path"] for line in lines[1:]] == list(TREE)
    assert set(lines[1]) == {"path", "size", "mtime"}

    snapshot = InventorySource(InventorySource.Options(path=str(out)))
    assert snapshot.scope == "1234-ABCD" and snapshot.identifier == str(out.resolve())
    assert records(out) == records(tree, scope="1234-ABCD")
    assert records(out, patterns=["*.mp3"], max_depth=2) == records(
        tree, patterns=["*.mp3"], scope="1234-ABCD"
    )
    assert records(out)[0]["id"] == "1234-ABCD:Artist/Album/01 - Song.mp3"


def test_a_snapshot_without_uuid_is_scoped_by_label_and_reports_unlisted_folders(tree, tmp_path):
    out = tmp_path / "drive.jsonl"
    write_snapshot(tree, out, {"label": "MUSIC"})
    with out.open("a") as f:
        f.write(json.dumps({"path": "zz-locked", "error": "cannot list zz-locked"}) + "\n")
    batches = read(out)
    assert InventorySource(InventorySource.Options(path=str(out))).scope == "MUSIC"
    [error] = [e for b in batches for e in b.errors]
    assert (error.item, error.message) == ("zz-locked", "cannot list zz-locked")
    # resumed past it, it is not reported twice
    assert not [e for b in read(out, checkpoint=batches[-1].checkpoint) for e in b.errors]


def test_a_snapshot_out_of_walk_order_is_refused(tree, tmp_path):
    out = tmp_path / "drive.jsonl"
    write_snapshot(tree, out, {"uuid": "U"})
    header, *lines = out.read_text().splitlines()
    out.write_text("\n".join([header, *reversed(lines)]) + "\n")
    with pytest.raises(SourceError, match="out of order"):
        read(out)


def test_fingerprints_change_with_the_listing(tree, tmp_path):
    def fingerprint(path: Path, **options: Any) -> dict[str, Any]:
        return InventorySource(InventorySource.Options(path=str(path), **options)).fingerprint()

    first = fingerprint(tree)
    assert first["files"] == len(TREE) and fingerprint(tree) == first
    (tree / ".ignored").write_text("hidden files are not in the listing")
    (tree / "video" / "poster.png").write_text("png")
    assert fingerprint(tree, patterns=["*.mp3"]) == fingerprint(tree, patterns=["*.mp3"])
    assert fingerprint(tree) != first
    out = tmp_path / "drive.jsonl"
    write_snapshot(tree, out, {"uuid": "U"})
    snap = fingerprint(out)
    assert snap["size"] == out.stat().st_size and len(snap["sha256"]) == 64
    (tree / "notes.txt").unlink()
    write_snapshot(tree, out, {"uuid": "U"})
    assert fingerprint(out) != snap


# -- resuming ------------------------------------------------------------------------


@pytest.mark.parametrize("batch_rows", [1, 2, 3])
@pytest.mark.parametrize("kind", ["folder", "snapshot"])
def test_resuming_from_every_checkpoint_reads_exactly_the_rest(tree, tmp_path, batch_rows, kind):
    for extra in ("a/b/c/deep.mp3", "a/b/x.txt", "a/z.txt", "video/a.mkv", "zz/last.flac"):
        (tree / extra).parent.mkdir(parents=True, exist_ok=True)
        (tree / extra).write_text(extra)
    path = tree
    if kind == "snapshot":
        path = tmp_path / "drive.jsonl"
        write_snapshot(tree, path, {"uuid": "U"})
    batches = read(path, batch_rows=batch_rows)
    everything = [row for b in batches for row in b.rows]
    assert len(everything) == len(TREE) + 5
    assert [row[1] for row in everything] == sorted(
        (row[1] for row in everything), key=lambda p: p.split("/")
    )
    done = 0
    for batch in batches:
        done += len(batch.rows)
        assert batch.checkpoint["index"] == done == batch.progress
        rest = [
            row
            for b in read(path, checkpoint=batch.checkpoint, batch_rows=batch_rows)
            for row in b.rows
        ]
        assert rest == everything[done:]


def test_a_resumed_walk_skips_past_a_deleted_last_file(tree):
    checkpoint = {"index": 2, "path": "Artist/Album/02 Second_Song.opus"}
    (tree / "Artist/Album/02 Second_Song.opus").unlink()
    rest = [row[0] for b in read(tree, ["path"], checkpoint) for row in b.rows]
    assert rest == ["Other - Tune.flac", "notes.txt", "video/clip.mkv"]


# -- through the engine ------------------------------------------------------------


def music_job(folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"type": "inventory", "path": str(folder), "patterns": ["*"]},
        "target": {"type": "sql", "table": "content_index", "key": ["external_id"]},
        "mapping": {
            "external_id": "id",
            "title": "title",
            "artist": "artist",
            "content_type": "media_type",
            "file_size": "size",  # an int: stored in a text column on every backend
        },
        "on_missing": "mark_unavailable",
        "batch_rows": 2,
        **extra,
    }


def engine_for(store: Store, tmp_path: Path, jobs: dict[str, Any]) -> Engine:
    config = validate({"daemon": {"state_dir": str(tmp_path / "state")}, "jobs": jobs})
    _, registry = get_pluginmanager(load_entrypoints=False,
                                    plugins=(adapters.inventory, adapters.sql))
    return Engine(store, resolve_jobs(config, registry, "t.toml"), tmp_path / "state")


async def sync(engine: Engine, store: Store, folder: Path | None = None):
    run_id, outcome = await engine.run(
        Request("files", "cli", identifier=str(folder) if folder else None)
    )
    assert outcome.status == "completed", outcome.error
    return store.get_run(run_id)


def availability(store: Store) -> dict[str, tuple[str, str, str, bool]]:
    cursor = store.db.execute_sql(
        "SELECT external_id, title, artist, content_type, is_available FROM content_index"
    )
    return {r[0]: (r[1], r[2], r[3], bool(r[4])) for r in cursor.fetchall()}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_a_full_sync_marks_only_its_own_folder_s_missing_files(store, tmp_path):
    first, second = make_tree(tmp_path / "first"), make_tree(tmp_path / "second")
    engine = engine_for(store, tmp_path, {"files": music_job(first)})

    run = await sync(engine, store)
    assert (run.items_inserted, run.items_failed) == (len(TREE), 0)
    run = await sync(engine, store, second)  # the same job, another folder
    assert run.items_inserted == len(TREE)
    rows = availability(store)
    assert len(rows) == 2 * len(TREE) and all(r[3] for r in rows.values())
    song = f"{first.resolve()}:Artist/Album/01 - Song.mp3"
    assert rows[song] == ("Song", "Artist", "audio", True)
    sizes = {
        r[0]: r[1]
        for r in store.db.execute_sql("SELECT external_id, file_size FROM content_index").fetchall()
    }
    assert sizes[song] == "1" and sizes[f"{second.resolve()}:video/clip.mkv"] == "5"
    assert rows[f"{first.resolve()}:notes.txt"] == ("notes", "", "text", True)

    (first / "Artist/Album/01 - Song.mp3").unlink()
    run = await sync(engine, store)
    assert (run.items_unchanged, run.items_missing) == (len(TREE) - 1, 1)
    rows = availability(store)
    assert not rows[song][3]
    assert [k for k, r in rows.items() if not r[3]] == [song]  # the second folder's stay

    (second / "notes.txt").unlink()
    run = await sync(engine, store, second)
    assert run.items_missing == 1
    assert sorted(k for k, r in availability(store).items() if not r[3]) == sorted(
        [song, f"{second.resolve()}:notes.txt"]
    )


async def test_a_run_resumes_from_its_checkpoint_and_restarts_when_the_folder_changed(
    store, tmp_path
):
    folder = make_tree(tmp_path / "music")
    engine = engine_for(store, tmp_path, {"files": music_job(folder)})
    source = InventorySource(InventorySource.Options(path=str(folder)))
    run_id = store.create_run(
        job="files", trigger="cli", source_type="inventory", source_identifier=source.identifier
    )
    store.start(run_id, source.fingerprint())
    store.advance(
        run_id, {"processed": 2}, {"index": 2, "path": "Artist/Album/02 Second_Song.opus"}
    )
    store.finish(run_id, "pending", None)
    run = await sync(engine, store)
    assert run.id == run_id and run.items_inserted == len(TREE) - 2  # the rest only

    run_id = store.create_run(
        job="files", trigger="cli", source_type="inventory", source_identifier=source.identifier
    )
    store.start(run_id, source.fingerprint())
    store.advance(
        run_id, {"processed": 2}, {"index": 2, "path": "Artist/Album/02 Second_Song.opus"}
    )
    store.finish(run_id, "pending", None)
    (folder / "video" / "new.mkv").write_text("new")
    run = await sync(engine, store)  # changed since the checkpoint: read from the start
    assert run.id == run_id and run.items_processed == len(TREE) + 1
    assert (run.items_inserted, run.items_unchanged) == (3, len(TREE) - 2)


def test_the_inventory_source_is_registered_through_its_entry_point():
    _, registry = get_pluginmanager()
    assert registry.sources["inventory"] is InventorySource
    assert registry.origins[("source", "inventory")].distribution.startswith("syncd ")
