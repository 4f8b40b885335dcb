"""An untrusted drive, handled synchronously: mount it read-only, find files, copy them off.

Nothing here talks to udev or the engine (``syncd.triggers.usb`` does); every function
runs in a worker thread and can be tested on plain folders.

    DriveError             the drive cannot be used (a SyncdError)
    ├── MountError         mount(8) or umount(8) failed
    └── DriveRemoved       the drive went away (or failed) while files were copied off

The walk never follows a symbolic link: links, special files and files over the size
limit that match a job's patterns are *refused*, each with a reason, and the caller
reports them as errors. Copies land in a staging folder renamed into place once every
file is written and fsynced, so a drive pulled out early leaves nothing half-copied.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from syncd.errors import SyncdError
from syncd.filenames import is_text, shown
from syncd.globs import matcher, may_hold, split

READONLY_OPTIONS = ("ro", "nosuid", "nodev", "noexec")
COPY_CHUNK = 1024 * 1024
COMMAND_TIMEOUT_S = 60
HELPER_WAIT_S = 30.0  # how long an unprivileged daemon waits for syncd-mount@ to mount
#: errors from reading a drive that mean it is gone (or failing), not that one file is bad
GONE_ERRNOS = frozenset({errno.ENODEV, errno.EIO, errno.ENOENT, errno.ENXIO, errno.ESTALE,
                         errno.ENOTCONN, errno.ESHUTDOWN})
MOUNTINFO = Path("/proc/self/mountinfo")

#: called after each chunk copied: (path relative to the drive, bytes of it copied so far)
ChunkCallback = Callable[[PurePosixPath, int], None]


class DriveError(SyncdError):
    """A drive that cannot be used."""


class MountError(DriveError):
    """mount(8) or umount(8) failed; the message holds what it said."""


class DriveRemoved(DriveError):
    """The drive vanished or failed while its files were copied off."""

    def __init__(self, item: PurePosixPath | str, reason: str) -> None:
        self.item = str(item)
        super().__init__(f"drive removed during copy: {item} ({reason}); nothing was "
                         "imported from it, plug it in again")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file on the drive that matched a pattern but is not read, and why."""

    path: str  # relative to the drive's root, with '/'
    reason: str
    code: str  # symlink, special_file, name_not_utf8, too_large, too_deep, too_many, ...

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# -- mounts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    device: str  # "major:minor"
    root: str  # the folder of the filesystem mounted (/ unless a bind mount)
    mount_point: Path
    options: tuple[str, ...]  # per-mount options: ro, nosuid, nodev, noexec, ...
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_entries(mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    """Every mount this process sees."""
    entries = []
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        entries.append(MountEntry(fields[2], _unescape(fields[3]), Path(_unescape(fields[4])),
                                  tuple(fields[5].split(",")), tail[0], _unescape(tail[1])))
    return entries


def _device_number(devnode: str) -> str | None:
    try:
        rdev = os.stat(devnode).st_rdev
    except OSError:
        return None
    return f"{os.major(rdev)}:{os.minor(rdev)}" if rdev else None


def mounts_of(devnode: str, mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    """The mounts of the whole filesystem on ``devnode`` (bind mounts of a part excluded)."""
    number, real = _device_number(devnode), os.path.realpath(devnode)
    return [e for e in mount_entries(mountinfo)
            if e.root == "/" and ((number is not None and e.device == number)
                                  or (e.source.startswith("/") and
                                      os.path.realpath(e.source) == real))]


def find_mount(devnode: str, mountinfo: Path = MOUNTINFO) -> Path | None:
    """Where ``devnode`` is mounted already (by an automounter, say), if anywhere."""
    found = mounts_of(devnode, mountinfo)
    return found[0].mount_point if found else None


def kernel_has_nosymfollow(release: str | None = None) -> bool:
    """``nosymfollow`` exists since Linux 5.10."""
    match = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return match is not None and (int(match[1]), int(match[2])) >= (5, 10)


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(command), capture_output=True, text=True, check=False,
                              timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MountError(f"{' '.join(command)} did not finish in {COMMAND_TIMEOUT_S} s"
                         ) from None


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"


def mount_readonly(devnode: str, fstype: str, target: Path,
                   extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Mount ``devnode`` on ``target`` read-only, nosuid, nodev, noexec (and nosymfollow).

    ``nosymfollow`` is tried when the kernel is recent enough and dropped if the mount
    refuses it. Returns the options used.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", fstype):
        raise MountError(f"cannot mount {devnode}: unexpected filesystem type {fstype!r}")
    made = not target.exists()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    tries: list[tuple[str, ...]] = [(*READONLY_OPTIONS, *extra)]
    if kernel_has_nosymfollow():
        tries.insert(0, (*READONLY_OPTIONS, "nosymfollow", *extra))
    said = ""
    for options in tries:
        result = _run(["mount", "-t", fstype, "-o", ",".join(options), devnode, str(target)])
        if result.returncode == 0:
            return options
        said = said or _said(result)
    if made:
        target.rmdir()
    raise MountError(f"cannot mount {devnode} ({fstype}) read-only on {target}: {said}")


def wait_for_mount(devnode: str, abort: threading.Event,
                   timeout: float = HELPER_WAIT_S) -> Path | None:
    """Where the privileged helper (``syncd-mount@.service``) mounted ``devnode``, once it
    has; None after ``timeout`` seconds or when the drive is pulled out."""
    deadline = time.monotonic() + timeout
    while (found := find_mount(devnode)) is None:
        if time.monotonic() > deadline or abort.wait(0.1):
            return None
    return found


def unmount(target: Path) -> None:
    """Unmount ``target``; lazily (``umount -l``) when it is busy or its drive is gone."""
    result = _run(["umount", str(target)])
    if result.returncode != 0 and os.path.ismount(target):
        lazy = _run(["umount", "-l", str(target)])
        if lazy.returncode != 0 and os.path.ismount(target):
            raise MountError(f"cannot unmount {target}: {_said(result)}; {_said(lazy)}")


def safe_name(*candidates: str | None, default: str = "drive") -> str:
    """A file name made from the first non-empty candidate (a label, a UUID)."""
    for candidate in candidates:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", candidate or "").strip("._")[:64]
        if name:
            return name
    return default


def mount_point_for(media_dir: Path, name: str) -> Path:
    """``media_dir/name``, or ``name-2``, ``name-3``… when another drive is mounted there."""
    target, n = media_dir / name, 1
    while os.path.ismount(target):
        n += 1
        target = media_dir / f"{name}-{n}"
    return target


# -- finding files ----------------------------------------------------------------------


def _symlink_reason(entry: os.DirEntry[str], parts: Sequence[str]) -> str:
    try:
        target = os.readlink(entry.path)
    except OSError:
        return "symbolic link, not followed"
    inside = posixpath.normpath(posixpath.join(*parts[:-1], target) if parts[:-1] else target)
    if posixpath.isabs(target) or inside == ".." or inside.startswith("../"):
        return f"symbolic link to {target} leaves the drive, not followed"
    return f"symbolic link to {target}, not followed"


def find_files(root: Path, patterns: Iterable[str], max_file_bytes: int,
               max_files: int = 10_000, max_depth: int = 16
               ) -> tuple[list[Path], list[Refusal]]:
    """Regular files under ``root`` matching any pattern (relative to ``root``).

    Symbolic links are never followed: one that matches (or could lead to a match) is
    refused, as are special files, files over ``max_file_bytes``, folders deeper than
    ``max_depth`` that could hold matches, and matches past ``max_files``.
    """
    compiled = ["/".join(split(p)) for p in patterns if split(p)]
    found: list[Path] = []
    refused: list[Refusal] = []
    matches = matcher(compiled, anywhere=False)

    def wanted(parts: tuple[str, ...]) -> bool:
        return matches("/".join(parts))

    def below(parts: tuple[str, ...]) -> bool:
        return any(may_hold(parts, p) for p in compiled)

    def refuse(rel: str, reason: str, code: str) -> None:
        refused.append(Refusal(shown(rel), reason, code))  # syncd.filenames

    stack: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            refuse("/".join(prefix) or ".", f"folder cannot be listed: {exc.strerror}",
                   "unlistable")
            continue
        subfolders = []
        for entry in entries:
            parts = (*prefix, entry.name)
            rel = "/".join(parts)
            if entry.is_symlink():
                if wanted(parts) or below(parts):
                    refuse(rel, _symlink_reason(entry, parts), "symlink")
            elif entry.is_dir(follow_symlinks=False):
                if not below(parts):
                    continue
                if len(parts) >= max_depth:
                    refuse(rel, f"folder deeper than {max_depth} levels, not searched",
                           "too_deep")
                else:
                    subfolders.append((entry.path, parts))
            elif wanted(parts):
                if not entry.is_file(follow_symlinks=False):
                    refuse(rel, "not a regular file", "special_file")
                    continue
                size = entry.stat(follow_symlinks=False).st_size
                if not is_text(rel):
                    refuse(rel, "the name is not UTF-8 text (rename it)", "name_not_utf8")
                elif size > max_file_bytes:
                    refuse(rel, f"{size / 2**20:.1f} MiB is over the limit of "
                                f"{max_file_bytes / 2**20:g} MiB ([usb].max_file_mb)",
                           "too_large")
                elif len(found) >= max_files:
                    refuse(rel, f"more than {max_files} matching files; this one and any "
                                "others left unread", "too_many")
                    return sorted(found), refused
                else:
                    found.append(Path(entry.path))
        stack.extend(reversed(subfolders))  # popped in name order
    return sorted(found), refused


# -- copying off ------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_on_drive(path: Path) -> tuple[int, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DriveError(f"{path} is no longer a regular file")
    return fd, st


def _chunks(fd: int, item: PurePosixPath, removed: threading.Event | None
            ) -> Iterator[bytes]:
    while True:
        if removed is not None and removed.is_set():
            raise DriveRemoved(item, "the drive was unplugged")
        try:
            chunk = os.read(fd, COPY_CHUNK)
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise DriveRemoved(item, exc.strerror or str(exc)) from exc
            raise
        if not chunk:
            return
        yield chunk


def _copy_one(source: Path, item: PurePosixPath, target: Path, max_file_bytes: int | None,
              removed: threading.Event | None, on_chunk: ChunkCallback | None) -> None:
    try:
        fd, st = _open_on_drive(source)
    except OSError as exc:
        if exc.errno in GONE_ERRNOS:
            raise DriveRemoved(item, exc.strerror or str(exc)) from exc
        raise
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = 0
        with open(target, "xb") as out:
            for chunk in _chunks(fd, item, removed):
                copied += len(chunk)
                if max_file_bytes is not None and copied > max_file_bytes:
                    raise DriveError(f"{item} grew past the size limit while copied")
                out.write(chunk)
                if on_chunk is not None:
                    on_chunk(item, copied)
            out.flush()
            os.fsync(out.fileno())
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def copy_off(files: Iterable[Path], root: Path, dest: Path, *,
             max_file_bytes: int | None = None, removed: threading.Event | None = None,
             chunk_callback: ChunkCallback | None = None) -> list[Path]:
    """Copy ``files`` (under ``root``) to ``dest``, keeping their paths relative to ``root``.

    Everything is written into ``dest.partial`` first, fsynced, and renamed to ``dest``
    only once complete. If the drive goes away (an I/O error, or ``removed`` set) the
    partial copy is deleted and :class:`DriveRemoved` raised; on any other error the
    partial copy is deleted too. Returns the copies, in the order of ``files``.
    """
    sources = [Path(f) for f in files]
    items = [PurePosixPath(f.relative_to(root).as_posix()) for f in sources]
    staging = dest.with_name(dest.name + ".partial")
    staging.mkdir(mode=0o700, parents=True)
    try:
        for source, item in zip(sources, items, strict=True):
            _copy_one(source, item, staging.joinpath(*item.parts), max_file_bytes,
                      removed, chunk_callback)
        for folder in sorted({staging.joinpath(*i.parts).parent for i in items}):
            _fsync_dir(folder)
        staging.rename(dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [dest.joinpath(*item.parts) for item in items]


def clean_partials(usb_dir: Path) -> list[Path]:
    """Delete copies a crash left half-done (``*.partial`` under ``usb_dir/<drive>/``)."""
    removed = []
    for partial in usb_dir.glob("*/*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial)
    return removed
