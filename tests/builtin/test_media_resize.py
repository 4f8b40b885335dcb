"""Media resize (issue 10 item 8): a record's image is scaled down before its upload,
once per content of the original file (Pillow, ``syncd[media]``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.store import Store
from syncd_builtin.media_resize import Resize, resized, resized_path
from tests.builtin.test_rest_media import export as export_photos
from tests.fakes.gallery import GalleryFake

Image = pytest.importorskip("PIL.Image", reason="Pillow (syncd[media]) is not installed")


@pytest.fixture
def gallery() -> Iterator[GalleryFake]:
    with GalleryFake() as fake:
        yield fake


def picture(path: Path, size: tuple[int, int], kind: str = "JPEG") -> Path:
    image = Image.new("RGB", size, (200, 120, 40))
    for x in range(0, size[0], 50):  # some detail, so the encoder has work to do
        image.paste((20, 20, 200), (x, 0, x + 10, size[1]))
    image.save(path, kind)
    return path


def export(store: Store, tmp_path: Path, fake: GalleryFake, records: list[dict[str, Any]],
           resize: dict[str, int]) -> Any:
    return export_photos(store, tmp_path, fake, records, resize=resize)


def test_a_large_image_arrives_scaled_down_and_is_uploaded_once(
        store: Store, tmp_path: Path, gallery: GalleryFake) -> None:
    big = picture(tmp_path / "headshot.jpg", (3000, 2000))
    small = picture(tmp_path / "small.png", (800, 600), "PNG")
    records = [{"id": "1", "title": "Headshot", "photo_path": str(big)},
               {"id": "2", "title": "Small", "photo_path": str(small)}]
    export(store, tmp_path, gallery, records, {"max": 2000, "quality": 85})
    media = {name: f"m{i + 1}" for i, (name, _) in enumerate(gallery.uploads)}
    assert sorted(media) == ["headshot.jpg", "small.png"]
    with Image.open(io.BytesIO(gallery.media[media["headshot.jpg"]])) as sent:
        assert (sent.format, sent.size) == ("JPEG", (2000, 1333))
    assert gallery.media[media["small.png"]] == small.read_bytes()  # small: sent as it is
    assert list((tmp_path / "state" / "media" / "resized").iterdir()), "nothing cached"

    records[0] = {**records[0], "title": "Headshot 2026"}  # the file itself is unchanged
    run = export(store, tmp_path, gallery, records, {"max": 2000, "quality": 85})
    assert (run.items_updated, run.items_unchanged) == (1, 1)
    assert len(gallery.uploads) == 2  # not uploaded again


def test_resize_keeps_the_format_and_the_aspect(tmp_path: Path) -> None:
    tall = picture(tmp_path / "tall.png", (1200, 2400), "PNG").read_bytes()
    out = resized(tall, Resize(max=1000), tmp_path)
    with Image.open(io.BytesIO(out)) as image:
        assert (image.format, image.size) == ("PNG", (500, 1000))
    assert resized(tall, Resize(max=1000), tmp_path) == out  # from the cache
    assert resized(b"%PDF-1.4 not an image", Resize(max=100)) == b"%PDF-1.4 not an image"


def test_resized_path_for_a_browser_upload(tmp_path: Path) -> None:
    big = picture(tmp_path / "big.jpg", (3000, 2000))
    copy = resized_path(big, Resize(max=1500), tmp_path / "state")
    assert copy != big and copy.name == "big.jpg"
    with Image.open(copy) as image:
        assert image.size == (1500, 1000)
    small = picture(tmp_path / "small.jpg", (300, 200))
    assert resized_path(small, Resize(max=1500), tmp_path / "state") == small


def test_a_bad_quality_names_the_key(store: Store, tmp_path: Path,
                                     gallery: GalleryFake) -> None:
    from syncd.errors import ConfigError

    with pytest.raises(ConfigError, match=r"jobs\.photos\.target\.resize\.quality"):
        export(store, tmp_path, gallery, [], {"max": 2000, "quality": 120})
