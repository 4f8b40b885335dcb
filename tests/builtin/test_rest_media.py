"""Media of the REST target: a record's file is uploaded once per content (SPEC §8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.store import Store
from syncd.store.models import IdMap
from syncd.testing import make_engine, run_job
from syncd_builtin.rest_target import RestTarget
from tests.fakes.gallery import GalleryFake


@pytest.fixture
def gallery() -> Iterator[GalleryFake]:
    with GalleryFake() as fake:
        yield fake


def export(store: Store, tmp_path: Path, fake: GalleryFake,
           records: list[dict[str, Any]], **target: Any) -> Any:
    """One run of a REST export with photo uploads; ``target``: more target options."""
    engine = make_engine(store, tmp_path / "state", {"photos": {
        "source": {"type": "memory", "records": records},
        "mapping": {"id": "id", "title": "title", "photo_path": "photo_path"},
        "target": {"type": "rest", "url": fake.url, "key": ["id"],
                   "create": {"method": "POST", "path": "/photos"},
                   "update": {"method": "PUT", "path": "/photos/{remote_id}"},
                   "id_path": "photo.id",
                   "files": {"photo": "photo_path"},
                   "upload": {"path": "/media", "id_path": "media.id"}, **target}}},
        adapters=[RestTarget])
    run, outcome = run_job(engine, "photos")
    assert outcome.status == "completed", outcome.error
    return run


def test_a_file_is_uploaded_once_and_sent_as_its_id(store: Store, tmp_path: Path,
                                                    gallery: GalleryFake) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"\xff\xd8 first photo")
    b.write_bytes(b"\xff\xd8 second photo")
    records = [{"id": "1", "title": "Sunrise", "photo_path": str(a)},
               {"id": "2", "title": "Sunset", "photo_path": str(b)}]
    export(store, tmp_path, gallery, records)
    # the two records are sent concurrently: the media ids follow the order of arrival
    names = [name for name, _ in gallery.uploads]
    assert sorted(names) == ["a.jpg", "b.jpg"]
    media_id = {name: f"m{i}" for i, name in enumerate(names, 1)}
    sent = sorted(gallery.records.values(), key=lambda r: r["title"])
    # the id, not the path
    assert [r.get("photo") for r in sent] == [media_id["a.jpg"], media_id["b.jpg"]]
    assert all("photo_path" not in r for r in sent)
    rows = {r.local_key: (r.remote_id, r.state) for r in IdMap.select()}
    assert rows["1#photo"] == (media_id["a.jpg"], "synced")
    assert rows["2#photo"] == (media_id["b.jpg"], "synced")

    # the title changes, the file does not: the record is updated, the file not sent
    records[0] = {**records[0], "title": "Sunrise over the bay"}
    run = export(store, tmp_path, gallery, records)
    assert (run.items_updated, run.items_unchanged) == (1, 1)
    assert len(gallery.uploads) == 2
    sunrise = rows["1"][0]  # record 1's remote id
    assert gallery.records[sunrise] == {"title": "Sunrise over the bay",
                                        "photo": media_id["a.jpg"]}

    # a new file under the same path: uploaded again, the record points at it
    a.write_bytes(b"\xff\xd8 retouched")
    records[0] = {**records[0], "title": "Sunrise (retouched)"}
    export(store, tmp_path, gallery, records)
    assert len(gallery.uploads) == 3 and gallery.records[sunrise]["photo"] == "m3"


def test_a_missing_file_fails_its_record_only(store: Store, tmp_path: Path,
                                              gallery: GalleryFake) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(b"photo")
    records = [{"id": "1", "title": "Here", "photo_path": str(good)},
               {"id": "2", "title": "Gone", "photo_path": str(tmp_path / "gone.jpg")}]
    run = export(store, tmp_path, gallery, records)
    assert (run.items_inserted, run.items_failed) == (1, 1)
    [error] = store.errors_of(run.id)
    assert error.error_code == "file_unreadable" and "gone.jpg" in error.error_message
    assert [t for t in (r["title"] for r in gallery.records.values())] == ["Here"]
