"""Walking a folder in a stable order: what makes an inventory checkpoint cheap.

Each directory's names are sorted, so the walk order is the order of the relative
paths compared component by component; a resumed walk skips (and prunes whole
directories) up to and including the last path it produced. Regular files only;
hidden names, ``lost+found`` and Windows recycle bins are skipped; symlinks are
followed only when asked, and only while they stay inside the folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syncd.errors import SourceError

SKIPPED_NAMES = frozenset({"lost+found", "System Volume Information", "$RECYCLE.BIN"})


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
