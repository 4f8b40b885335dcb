"""Media resize before an upload: ``resize = { max = 2000, quality = 85 }`` (Pillow, the
optional extra ``syncd[media]``).

A JPEG, PNG or WebP image whose long side is over ``max`` pixels is scaled down to it
(aspect kept, EXIF orientation applied) and saved in its own format (JPEG and WebP at
``quality``); anything else, and an image already small enough, goes out as it is. The
result is cached under ``state_dir/media/resized/`` by the hash of the original bytes
and the options, so a retried upload, or the browser target's ``upload`` step for the
same file, does not resize it again. Uploads stay once per hash of the original file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
CACHE = Path("media") / "resized"


class Resize(BaseModel):
    """``resize = { max = 2000, quality = 85 }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(2000, ge=16, le=20_000, description="longest side, in pixels")
    quality: int = Field(85, ge=1, le=95, description="JPEG and WebP quality")

    @model_validator(mode="after")
    def _pillow(self) -> Resize:
        """Refused at check-config when Pillow is missing, not at the first upload."""
        try:
            import PIL  # noqa: F401
        except ImportError:
            raise ValueError("resizing needs Pillow: pip install 'syncd[media]'") from None
        return self


def resized(data: bytes, options: Resize, state_dir: Path | None = None) -> bytes:
    """``data`` scaled down to ``options.max`` on its long side, or as it is (not an
    image of a known format, or small enough). Cached under ``state_dir`` when given."""
    digest = hashlib.sha256(data).hexdigest()
    cached = (state_dir / CACHE / f"{digest}-{options.max}-{options.quality}"
              if state_dir is not None else None)
    if cached is not None and cached.exists():
        return cached.read_bytes()
    result = _resize(data, options)
    if cached is not None:
        _store(cached, result)
    return result


def resized_path(path: Path, options: Resize, state_dir: Path) -> Path:
    """The file to upload in place of ``path`` (a browser's file input takes a path):
    the cached, resized copy, named like the original; ``path`` itself when unchanged."""
    data = path.read_bytes()
    result = resized(data, options, state_dir)
    if result is data or result == data:
        return path
    digest = hashlib.sha256(data).hexdigest()[:16]
    copy = state_dir / CACHE / digest / path.name
    if not copy.exists():
        _store(copy, result)
    return copy


def _resize(data: bytes, options: Resize) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
            if kind not in FORMATS or max(image.size) <= options.max:
                return data
            image.load()
            turned = ImageOps.exif_transpose(image)
            turned.thumbnail((options.max, options.max), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            if kind == "JPEG":
                rgb = turned if turned.mode in ("RGB", "L") else turned.convert("RGB")
                rgb.save(out, "JPEG", quality=options.quality, optimize=True)
            elif kind == "WEBP":
                turned.save(out, "WEBP", quality=options.quality)
            else:
                turned.save(out, "PNG", optimize=True)
            return out.getvalue()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError):
        return data  # not an image Pillow reads (a PDF, a video): sent as it is


def _store(path: Path, data: bytes) -> None:
    """Written whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".resize-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
