"""The ``inventory`` source: the files of a folder or drive, one record per file.

A folder is walked depth-first with the names of each directory sorted, so the walk
order is the order of the relative paths compared component by component. That is
what makes a checkpoint cheap and stable: the index of the next record plus the path
of the last one, and a resumed read skips (and prunes whole directories) up to and
including that path. Only one directory's names are held at a time per level, so
memory stays flat however large the tree.

Walk rules, alike for a folder and for a snapshot: regular files only; hidden names
(``.*``), ``lost+found`` and the recycle-bin folders of Windows-formatted drives are
skipped; symlinks are not followed unless ``follow_symlinks``, and even then only
those that stay inside the folder. A directory that cannot be listed is reported as an
item error (so ``on_missing`` leaves the job's records alone for that run).

A USB drive is unmounted before its run, so its listing is written beforehand by
:func:`write_snapshot` into a JSON Lines file: a header line, then one line per file.
The source reads such a file exactly like the folder it lists.

Guesses from the name: ``Artist - Title.ext`` gives artist and title; a leading track
number (``01 - Title``, ``01. Title``, and ``01 Title`` inside ``Artist/Album/``) is
dropped from the title, and then the artist is the grandparent folder. Artist and
album are only guessed for audio and video files; every file gets a title.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from syncd import hookimpl
from syncd.adapters import Batch, Checkpoint, ItemError, Row, Source
from syncd.adapters import Options as AdapterOptions
from syncd.errors import JobError, SourceError

if TYPE_CHECKING:
    from syncd.plugins import Registry

SNAPSHOT_VERSION = 1
SNAPSHOT_MAGIC = "syncd_inventory"
SKIPPED_NAMES = frozenset({"lost+found", "System Volume Information", "$RECYCLE.BIN"})
HASH_CHUNK = 1024 * 1024
HEADER_MAX = 1024 * 1024  # a snapshot's header line is far shorter
DEVICE_KEYS = ("uuid", "ID_FS_UUID", "label", "ID_FS_LABEL", "serial", "ID_SERIAL")
FIELDS = (
    "id",
    "path",
    "name",
    "extension",
    "size",
    "mtime",
    "mime",
    "media_type",
    "title",
    "artist",
    "album",
    "device",
)
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


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a listing: relative POSIX path, size in bytes, mtime (ISO-8601 UTC)."""

    path: str
    size: int
    mtime: str


@dataclass(frozen=True, slots=True)
class Unlisted:
    """A folder or file of the listing that could not be read.

    ``positioned``: ``path`` is a place in the walk order (so a checkpoint may point
    past it); false for a snapshot line that could not be parsed.
    """

    path: str
    message: str
    positioned: bool = True


Listing = Iterator[Entry | Unlisted]


class InventorySource(Source):
    """The files of a folder, or of a drive's snapshot, as records (see ``FIELDS``)."""

    name = "inventory"
    description = "The file listing of a folder or drive (or its snapshot), one record a file."

    class Options(AdapterOptions):
        """What a job's ``[jobs.NAME.source]`` table may say for ``type = "inventory"``."""

        path: str = Field(
            "", description="The folder to list, or a snapshot file written by the USB monitor."
        )
        patterns: list[str] = Field(
            ["*"],
            min_length=1,
            description="Globs on the relative path (`**` spans folders); one without `/` "
            "matches the file name at any depth.",
        )
        max_depth: int = Field(
            32, ge=0, description="How many folder levels below the root are entered."
        )
        follow_symlinks: bool = Field(
            False, description="Follow symlinks that stay inside the folder (never out of it)."
        )
        scope: str = Field(
            "",
            description="What on_missing covers and ids start with; default: the folder's "
            "resolved path, or the snapshot's device key.",
        )

        @field_validator("patterns")
        @classmethod
        def _globs(cls, value: list[str]) -> list[str]:
            for pattern in value:
                try:
                    re.compile(_pattern_regex(pattern), re.DOTALL)
                except (ValueError, re.error) as exc:
                    raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
            return value

    def __init__(self, options: InventorySource.Options, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.options: InventorySource.Options = options
        path = identifier or options.path
        if not path:
            raise SourceError(
                "the inventory source has no folder: set `path` in the job's source or give one"
            )
        self._path = Path(path).expanduser().resolve()
        self._matches = _matcher(options.patterns)
        self._header: dict[str, Any] | None = None
        self._kind: Literal["folder", "snapshot"] | None = None
        self._count: int | None = None  # files in the listing, once a fingerprint counted them

    @property
    def identifier(self) -> str:
        return str(self._path)

    @property
    def scope(self) -> str:
        """The option, else the snapshot's device key, else the folder's resolved path."""
        if self.options.scope:
            return self.options.scope
        if self._detect() == "snapshot":
            assert self._header is not None
            return str(self._header["scope"])
        return str(self._path)

    def fingerprint(self) -> dict[str, Any]:
        """A snapshot's size and sha256; a folder's digest of its (path, size, mtime) listing."""
        if self._detect() == "snapshot":
            digest = hashlib.sha256()
            try:
                with open(self._path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    while chunk := f.read(HASH_CHUNK):
                        digest.update(chunk)
            except OSError as exc:
                raise self._unreadable(exc) from exc
            return {"size": size, "sha256": digest.hexdigest()}
        digest, count = hashlib.sha256(), 0
        for entry in self._entries(None):
            if isinstance(entry, Entry):
                digest.update(f"{entry.path}\0{entry.size}\0{entry.mtime}\n".encode())
                count += 1
        self._count = count
        return {"files": count, "listing": digest.hexdigest()}

    def size(self) -> int | None:
        """Files in the listing (``Batch.progress`` counts records), once known."""
        return self._count

    def read(
        self, fields: Sequence[str], checkpoint: Checkpoint | None, batch_rows: int
    ) -> Iterator[Batch]:
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise JobError(
                f"the inventory source has no field {', '.join(map(repr, unknown))}",
                hint=f"fields: {', '.join(FIELDS)}",
            )
        index, after = 0, None
        if checkpoint:
            try:
                index = int(checkpoint["index"])
                after = str(checkpoint["path"]) if checkpoint.get("path") else None
            except (KeyError, TypeError, ValueError):
                raise SourceError(f"cannot resume {self._path} from {checkpoint!r}") from None
        scope = self.scope
        batch_rows = max(1, batch_rows)
        rows: list[Row] = []
        items: list[str] = []
        errors: list[ItemError] = []
        last = after
        for entry in self._entries(after):
            if isinstance(entry, Unlisted):
                kind = "system" if entry.positioned else "parsing"
                errors.append(ItemError(kind, "unreadable", entry.message, entry.path))
                if entry.positioned:  # resuming goes past it: reported once
                    last = entry.path
                continue
            record = _record(entry, scope)
            rows.append(tuple(record[f] for f in fields))
            items.append(entry.path)
            index, last = index + 1, entry.path
            if len(rows) >= batch_rows:
                yield Batch(rows, items, {"index": index, "path": last}, errors, progress=index)
                rows, items, errors = [], [], []
        yield Batch(rows, items, {"index": index, "path": last}, errors, progress=index)

    # -- listing -------------------------------------------------------------------

    def _detect(self) -> Literal["folder", "snapshot"]:
        """Whether the path is a folder or a snapshot file (checked by its header line)."""
        if self._kind is None:
            try:
                if self._path.is_dir():
                    self._kind = "folder"
                else:
                    with open(self._path, "rb") as f:
                        self._header = _header(f.readline(HEADER_MAX), self._path)
                    self._kind = "snapshot"
            except OSError as exc:
                raise self._unreadable(exc) from exc
        return self._kind

    def _entries(self, after: str | None) -> Listing:
        """The listing after the path ``after``, filtered by patterns and depth."""
        if self._detect() == "snapshot":
            listing = self._snapshot_entries(after)
        else:
            listing = walk(self._path, self.options.max_depth, self.options.follow_symlinks, after)
        depth, matches = self.options.max_depth, self._matches
        for entry in listing:
            if isinstance(entry, Unlisted) or (
                entry.path.count("/") <= depth and matches(entry.path)
            ):
                yield entry

    def _snapshot_entries(self, after: str | None) -> Listing:
        after_key = after.split("/") if after else None
        previous: list[str] | None = None
        try:
            with open(self._path, encoding="utf-8") as f:
                _header(f.readline().encode(), self._path)
                for number, line in enumerate(f, start=2):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                        if "error" in data:
                            unlisted = Unlisted(str(data["path"]), str(data["error"]))
                            if after_key is None or unlisted.path.split("/") > after_key:
                                yield unlisted
                            continue
                        entry = Entry(str(data["path"]), int(data["size"]), str(data["mtime"]))
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        yield Unlisted(f"line {number}", f"bad snapshot line: {exc!r}", False)
                        continue
                    key = entry.path.split("/")
                    if previous is not None and key <= previous:
                        raise SourceError(
                            f"{self._path} line {number}: {entry.path!r} is out "
                            "of order; a snapshot lists files in walk order"
                        )
                    previous = key
                    if after_key is None or key > after_key:
                        yield entry
        except OSError as exc:
            raise self._unreadable(exc) from exc
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self._path} is not a UTF-8 snapshot: {exc}") from exc

    def _unreadable(self, exc: OSError) -> SourceError:
        return SourceError(f"cannot read {self._path}: {exc.strerror or exc}")


def _header(line: bytes, path: Path) -> dict[str, Any]:
    """The header of a snapshot file; a ``SourceError`` when it is not one."""
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or SNAPSHOT_MAGIC not in header:
        raise SourceError(f"{path} is neither a folder nor an inventory snapshot")
    if header[SNAPSHOT_MAGIC] != SNAPSHOT_VERSION or "scope" not in header:
        raise SourceError(f"{path}: unsupported snapshot version {header[SNAPSHOT_MAGIC]!r}")
    return header


# -- the walk ------------------------------------------------------------------------


def walk(
    root: Path, max_depth: int = 32, follow_symlinks: bool = False, after: str | None = None
) -> Listing:
    """Regular files under ``root`` in walk order, each directory's names sorted.

    ``after`` (a relative path the walk produced) starts the walk just past it,
    without visiting the directories that come wholly before it.
    """
    root_real = os.path.realpath(root)
    after_key = after.split("/") if after else None
    ancestors = {_dir_id(root)} if follow_symlinks else set()
    yield from _walk(root_real, [], max_depth, follow_symlinks, root_real, after_key, ancestors)


def _walk(
    directory: str,
    parts: list[str],
    depth_left: int,
    follow: bool,
    root_real: str,
    after: list[str] | None,
    ancestors: set[tuple[int, int]],
) -> Listing:
    prefix = "/".join(parts)
    try:
        with os.scandir(directory) as it:
            names = sorted(((_shown(e.name), e) for e in it if _listed(e.name)), key=_first)
    except OSError as exc:
        if not parts:
            raise SourceError(f"cannot list {directory}: {exc.strerror or exc}") from exc
        yield Unlisted(prefix, f"cannot list {prefix}: {exc.strerror or exc}")
        return
    level = len(parts)
    for shown, entry in names:
        key = [*parts, shown]
        if after is not None:
            bound = after[: level + 1]
            if key < bound or key == after:
                continue  # wholly before the resume point (or the last record itself)
            inside = key == bound  # on the path to the resume point
        else:
            inside = False
        try:
            if entry.is_symlink():
                if not follow or not _within(os.path.realpath(entry.path), root_real):
                    continue
                info = os.stat(entry.path)
            else:
                info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since it was listed
        except OSError as exc:
            yield Unlisted("/".join(key), f"cannot stat {'/'.join(key)}: {exc.strerror or exc}")
            continue
        if stat.S_ISREG(info.st_mode):
            yield Entry("/".join(key), info.st_size, _iso(info.st_mtime_ns))
        elif stat.S_ISDIR(info.st_mode) and depth_left > 0:
            ident = (info.st_dev, info.st_ino)
            if follow and ident in ancestors:
                continue  # a symlink loop
            ancestors.add(ident)
            yield from _walk(
                entry.path,
                key,
                depth_left - 1,
                follow,
                root_real,
                after if inside else None,
                ancestors,
            )
            ancestors.discard(ident)


def _first(pair: tuple[str, os.DirEntry[str]]) -> str:
    return pair[0]


def _listed(name: str) -> bool:
    return not name.startswith(".") and name not in SKIPPED_NAMES


def _shown(name: str) -> str:
    """A name as text: bytes that are not UTF-8 are shown as ``\\xNN``."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def _dir_id(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _iso(mtime_ns: int) -> str:
    try:
        moment = datetime.fromtimestamp(mtime_ns // 1_000_000_000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- patterns --------------------------------------------------------------------


def _matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test of relative paths against the globs (case-sensitive, like the shell)."""
    if "*" in patterns or "**" in patterns:
        return lambda path: True
    regex = re.compile("|".join(f"(?:{_pattern_regex(p)})" for p in patterns), re.DOTALL)
    return lambda path: regex.fullmatch(path) is not None


def _pattern_regex(pattern: str) -> str:
    """A glob as a regex: ``*``, ``?`` and ``[...]`` stay within a name, ``**/`` spans
    folders; a glob without ``/`` matches a file name at any depth."""
    pattern = pattern.strip().removeprefix("./").lstrip("/")
    if not pattern:
        raise ValueError("empty pattern")
    if "/" not in pattern:
        return "(?:.*/)?" + _segment_regex(pattern)
    out = []
    segments = pattern.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        elif segment:
            out.append(_segment_regex(segment) + ("" if last else "/"))
    return "".join(out)


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            start = i + 1
            negate = segment[start : start + 1] in ("!", "^")
            start += negate
            end = segment.find("]", start + 1)  # a "]" first in the set is one of its members
            if end < 0:
                out.append(re.escape(c))
            else:
                members = re.sub(r"([\\\[\]&~|^])", r"\\\1", segment[start:end])
                out.append("[" + ("^/" if negate else "") + members + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


# -- records -----------------------------------------------------------------------


def _record(entry: Entry, scope: str) -> dict[str, Any]:
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


# -- snapshots -------------------------------------------------------------------


def device_key(device: Mapping[str, Any]) -> str:
    """What identifies a drive across plugs: its filesystem UUID, else its label."""
    for key in DEVICE_KEYS:
        value = device.get(key)
        if value:
            return str(value)
    return ""


def write_snapshot(root: Path, out: Path, device: dict[str, Any], *, max_depth: int = 32) -> int:
    """Write the listing of ``root`` (a mounted drive) to ``out`` as JSON Lines.

    The first line is the header (``syncd_inventory``, ``device``, ``scope``,
    ``root``), then one ``{"path", "size", "mtime"}`` line per file in walk order, and
    ``{"path", "error"}`` for a folder that could not be listed. The file appears
    complete or not at all. Returns the number of files listed.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise SourceError(f"cannot list {root}: not a folder")
    scope = device_key(device) or str(root)
    header = {SNAPSHOT_MAGIC: SNAPSHOT_VERSION, "device": device, "scope": scope, "root": str(root)}
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    count = 0
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False, default=str) + "\n")
            for entry in walk(root, max_depth):
                if isinstance(entry, Unlisted):
                    line: dict[str, Any] = {"path": entry.path, "error": entry.message}
                else:
                    line = {"path": entry.path, "size": entry.size, "mtime": entry.mtime}
                    count += 1
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


@hookimpl(trylast=True)
def syncd_register_adapters(registry: Registry) -> None:
    """Offer ``inventory``; ``trylast`` lets a plugin's own ``inventory`` source take it."""
    registry.add_source(InventorySource)
