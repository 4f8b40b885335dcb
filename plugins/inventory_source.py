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

The walk lives in ``inventory_walk``, name guesses in ``inventory_names``, drive
snapshots in ``inventory_snapshot``; globs are syncd's one engine (``glob_matcher``,
shared with watched folders and drives).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from syncd.adapters import (
    Batch,
    Checkpoint,
    ErrorType,
    ItemError,
    Row,
    RunContext,
    Source,
    glob_matcher,
    glob_regex,
)
from syncd.adapters import Options as AdapterOptions
from syncd.errors import JobError, SourceError

from .inventory_names import file_record
from .inventory_snapshot import HEADER_MAX, read_header, write_snapshot
from .inventory_walk import Entry, Listing, Unlisted, walk

if TYPE_CHECKING:
    from syncd.adapters import DriveInfo, DriveJob

__all__ = ["FIELDS", "InventorySource", "write_snapshot"]

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
                    re.compile(glob_regex(pattern), re.DOTALL)
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
        self._matches = glob_matcher(options.patterns)
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
            try:
                with open(self._path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    sha256 = hashlib.file_digest(f, "sha256").hexdigest()
            except OSError as exc:
                raise self._unreadable(exc) from exc
            return {"size": size, "sha256": sha256}
        digest, count = hashlib.sha256(), 0
        for entry in self._entries(None):
            if isinstance(entry, Entry):
                digest.update(f"{entry.path}\0{entry.size}\0{entry.mtime}\n".encode())
                count += 1
        self._count = count
        return {"files": count, "listing": digest.hexdigest()}

    def check(self, ctx: RunContext) -> str:
        """``syncd check``: the folder lists (its first entry), or the snapshot's header reads."""
        if self._detect() == "snapshot":
            return f"snapshot {self._path} is readable"
        try:
            with os.scandir(self._path) as entries:
                next(entries, None)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        return f"folder {self._path} is readable"

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
                kind: ErrorType = "system" if entry.positioned else "parsing"
                errors.append(ItemError(kind, "unreadable", entry.message, entry.path))
                if entry.positioned:  # resuming goes past it: reported once
                    last = entry.path
                continue
            record = file_record(entry, scope)
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
                        self._header = read_header(f.readline(HEADER_MAX), self._path)
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
        passed = after_key is None  # past the resume point: a torn line is new here
        previous: list[str] | None = None
        try:
            with open(self._path, encoding="utf-8") as f:
                read_header(f.readline().encode(), self._path)
                for number, line in enumerate(f, start=2):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                        if "error" in data:
                            unlisted = Unlisted(str(data["path"]), str(data["error"]))
                            if after_key is None or unlisted.path.split("/") > after_key:
                                yield unlisted
                            passed = passed or (after_key is not None
                                                and unlisted.path.split("/") >= after_key)
                            continue
                        entry = Entry(str(data["path"]), int(data["size"]), str(data["mtime"]))
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        if passed:  # one read before the resume point reported it
                            yield Unlisted(f"line {number}", f"bad snapshot line: {exc!r}",
                                           False)
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
                    passed = passed or (after_key is not None and key >= after_key)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self._path} is not a UTF-8 snapshot: {exc}") from exc

    def _unreadable(self, exc: OSError) -> SourceError:
        return SourceError(f"cannot read {self._path}: {exc.strerror or exc}")


def drive_listings(drive: DriveInfo, root: Path, jobs: Sequence[DriveJob],
                   dest: Path) -> Mapping[str, list[Path]] | None:
    """An ``inventory`` job gets the drive's listing, taken while the drive is mounted
    (the ``syncd_drive_inserted`` hook of ``syncd_builtin.adapters``)."""
    mine = [job for job in jobs if job.source_type == InventorySource.name]
    if not mine:
        return None
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    listings = {}
    for job in mine:
        listing = dest / f"inventory-{job.name}.jsonl"
        write_snapshot(root, listing, dict(drive.device))
        listings[job.name] = [listing]
    return listings
