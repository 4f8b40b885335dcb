"""What a file's name tells: its MIME type, and title, artist and album guesses.

``Artist - Title.ext`` gives artist and title; a leading track number (``01 - Title``,
``01. Title``, and ``01 Title`` inside ``Artist/Album/``) is dropped from the title,
and then the artist is the grandparent folder. Artist and album are only guessed for
audio and video files; every file gets a title.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from .inventory_walk import Entry

UNKNOWN_MIME = "application/octet-stream"
MEDIA_KINDS = frozenset({"audio", "video"})  # the kinds artist and album are guessed for

# Beyond the standard library's table: common audio and video formats it lacks.
EXTRA_TYPES = {
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".m4b": "audio/mp4",
    ".opus": "audio/opus",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".aac": "audio/aac",
    ".wma": "audio/x-ms-wma",
    ".alac": "audio/x-alac",
    ".ape": "audio/x-ape",
    ".wv": "audio/x-wavpack",
    ".aiff": "audio/aiff",
    ".aif": "audio/aiff",
    ".dsf": "audio/x-dsf",
    ".mka": "audio/x-matroska",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4v": "video/x-m4v",
    ".wmv": "video/x-ms-wmv",
    ".flv": "video/x-flv",
    ".3gp": "video/3gpp",
    ".ogv": "video/ogg",
    ".mts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}


def _mime_table() -> mimetypes.MimeTypes:
    """The standard library's built-in table only (not the host's /etc/mime.types),
    so a file gets the same type on every machine; plus ``EXTRA_TYPES``."""
    table = mimetypes.MimeTypes()
    for extension, mime in EXTRA_TYPES.items():
        table.add_type(mime, extension)
    return table


MIME = _mime_table()
TRACK = re.compile(r"^\d{1,3}\s*[-.]\s*(?P<rest>\S.*)$")  # 01 - Title, 01. Title
TRACK_SPACED = re.compile(r"^\d{1,3}\s+(?P<rest>\S.*)$")  # 01 Title (album folders only)
ARTIST_TITLE = re.compile(r"\s+[-\u2013\u2014]\s+")  # "Artist - Title", en or em dash too


def file_record(entry: Entry, scope: str) -> dict[str, Any]:
    """Every field of one file's record, guesses included."""
    parts = entry.path.split("/")
    name = parts[-1]
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    mime = _mime(name)
    kind = mime.partition("/")[0]
    title, artist, album = _guess(stem, parts, kind in MEDIA_KINDS)
    return {
        "id": f"{scope}:{entry.path}",
        "path": entry.path,
        "name": name,
        "extension": extension.lower(),
        "size": entry.size,
        "mtime": entry.mtime,
        "mime": mime,
        "media_type": kind,
        "title": title,
        "artist": artist,
        "album": album,
        "device": scope,
    }


def _mime(name: str) -> str:
    mime, encoding = MIME.guess_type(name, strict=False)
    if mime is None and encoding is not None:
        return f"application/{'gzip' if encoding == 'gzip' else 'x-' + encoding}"
    return mime or UNKNOWN_MIME


def _guess(stem: str, parts: list[str], media: bool) -> tuple[str, str, str]:
    """Title, artist and album guessed from a file's name and folders."""
    clean = " ".join(stem.replace("_", " ").split())
    in_album = len(parts) >= 3  # Artist/Album/file
    match = TRACK.match(clean) or (TRACK_SPACED.match(clean) if in_album else None)
    rest = match["rest"] if match else clean
    title, artist = rest, ""
    if media:
        pieces = ARTIST_TITLE.split(rest, maxsplit=1)
        if len(pieces) == 2 and all(p.strip() for p in pieces):
            artist, title = pieces[0].strip(), pieces[1].strip()
        elif match and in_album:
            artist = parts[-3]
    album = parts[-2] if media and in_album else ""
    return title or clean or stem, artist, album
