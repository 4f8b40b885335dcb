"""Watched folders: a complete file dropped into a job's folder becomes a run.

A file is taken when it is closed after writing or renamed into place, also from a
folder outside (inotify through watchdog), or as it appears when nothing will close it
(a link, a FIFO, a hard link), then confirmed stable in size; temporary and
hidden names are ignored. Files already there at start are caught up, and an inotify
overflow triggers a rescan. After its run completed, a file is archived to
``processed/``, deleted or kept; one that cannot be read at all, and anything that is
not a regular file (a link, a FIFO), goes to ``failed/`` with ``NAME.error.json``.
A file replaced while its run read it stays, and is taken again as a new arrival. A
watched folder removed or replaced is watched again once a folder is back at its path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.events import FileSystemEventHandler as _Handler
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from syncd.config.schema import Config, WatchConfig
from syncd.globs import cached_matcher, matcher
from syncd.tasks import supervise
from syncd.triggers import archive
from syncd.triggers.ingest import FileIngestor, Ingested

TEMPORARY = (".*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*.swp", "~*", "*~",
             "*.filepart")
IS_TEMPORARY = matcher(TEMPORARY)
STABLE_CHECK_S = 0.05  # a closed or renamed file must keep its size this long
CATCH_UP_STABLE_S = 1.0  # a file found at start may still be written: wait longer
RESCAN_EVERY_S = 300.0  # a safety net under inotify
FOLDER_CHECK_S = 1.0  # how often each watched folder is checked to be the one watched


def is_temporary(name: str) -> bool:
    """Names of files still being written (editors, browsers, rsync, Syncthing)."""
    return IS_TEMPORARY(name)


@dataclass(slots=True)
class Folder:
    job: str
    watch: WatchConfig
    queue: asyncio.Queue[Path] = field(default_factory=asyncio.Queue)
    queued: set[Path] = field(default_factory=set)
    again: set[Path] = field(default_factory=set)  # arrived anew while queued
    watched: ObservedWatch | None = None  # inotify's watch on the folder, while it is there
    identity: tuple[int, int] | None = None  # (device, inode) of the folder watched

    def wants(self, path: Path) -> bool:
        return (path.parent == self.watch.path and not is_temporary(path.name)
                and cached_matcher(tuple(self.watch.patterns))(path.name))


class FolderWatcher:
    """Watches every job's ``[jobs.X.watch]`` folder and ingests what arrives."""

    def __init__(self, ingestor: FileIngestor, config: Config) -> None:
        self.ingestor = ingestor
        self.log = structlog.get_logger("syncd.watch")
        self.folders = [Folder(name, job.watch.model_copy(
                            update={"path": job.watch.path.resolve()}))
                        for name, job in config.jobs.items() if job.watch]
        self.observer: InotifyObserver | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self._settling: set[asyncio.Task[None]] = set()
        self._overflow = _OverflowHook(self)

    async def start(self) -> None:
        if not self.folders:
            return
        self.loop = asyncio.get_running_loop()
        # full events: a file moved in from outside the folder (an IN_MOVED_TO without
        # its pair) is reported as a move, not as a creation of a file still written
        self.observer = InotifyObserver(generate_full_events=True)
        self.handler = _Events(self)
        for folder in self.folders:
            folder.watch.path.mkdir(parents=True, exist_ok=True)
            self._watch(folder)
        await asyncio.to_thread(self.observer.start)
        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._overflow)
        for folder in self.folders:
            self.tasks.append(supervise(self._work(folder), f"watch-{folder.job}"))
        self.tasks.append(supervise(self._rescan_periodically(), "rescan"))
        self.tasks.append(supervise(self._keep_watching(), "watched-folders"))
        await self.rescan(CATCH_UP_STABLE_S)
        self.log.info("watching", folders={f.job: str(f.watch.path) for f in self.folders})

    async def stop(self) -> None:
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._overflow)
        if self.observer is not None:
            self.observer.stop()
            await asyncio.to_thread(self.observer.join, 10)
        tasks = [*self.tasks, *self._settling]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()

    async def rescan(self, stable_s: float = STABLE_CHECK_S,
                     folders: list[Folder] | None = None) -> None:
        """Queue every wanted file in the folders (at start, after lost events, and when a
        folder is back); a folder that is not there, or is a link, has nothing to queue."""
        for folder in self.folders if folders is None else folders:
            try:
                if await asyncio.to_thread(_identity, folder.watch.path) is None:
                    continue
                names = await asyncio.to_thread(_listing, folder.watch.path)
            except (FileNotFoundError, NotADirectoryError):  # gone since
                continue
            for name in names:
                self.arrived(folder.watch.path / name, stable_s)

    def _watch(self, folder: Folder) -> bool:
        """Watch the folder now at its path (again, if it was removed or replaced); False
        while there is no folder there (a link to one does not count)."""
        assert self.observer is not None
        identity = _identity(folder.watch.path)
        if identity is None:
            return False
        if folder.watched is not None:  # inotify stopped when the folder went
            self.observer.unschedule(folder.watched)
        folder.watched = self.observer.schedule(self.handler, str(folder.watch.path),
                                                recursive=False)
        folder.identity = identity
        return True

    def gone(self, path: Path) -> None:
        """On the loop: inotify says the folder at ``path`` was removed. Its watch went
        with it, and a folder made there at once may get the same inode number back."""
        for folder in self.folders:
            if folder.watch.path == path and folder.identity is not None:
                folder.identity = None
                self.log.warning("the watched folder is gone; it is watched again once it "
                                 "is back", job=folder.job, folder=str(path))

    async def check_folders(self) -> None:
        """A watched folder removed, moved away or replaced: said once, and watched again
        (with what it holds by then) as soon as a folder is at its path again."""
        for folder in self.folders:
            now = await asyncio.to_thread(_identity, folder.watch.path)
            if now == folder.identity:
                continue
            if now is None:
                self.gone(folder.watch.path)
            elif await asyncio.to_thread(self._watch, folder):
                self.log.info("watching the folder again", job=folder.job,
                              folder=str(folder.watch.path))
                await self.rescan(CATCH_UP_STABLE_S, [folder])

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(FOLDER_CHECK_S)
            await self.check_folders()

    def arrived(self, path: Path, stable_s: float = STABLE_CHECK_S) -> None:
        """On the loop: once ``path`` is stable, queue it for the job whose folder it is in.

        Stability is checked for every arriving file at once; only the runs queue.
        """
        for folder in self.folders:
            if not folder.wants(path):
                continue
            if path in folder.queued:
                folder.again.add(path)  # e.g. replaced while its run reads it
            else:
                folder.queued.add(path)
                task = asyncio.get_running_loop().create_task(
                    self._settle(folder, path, stable_s))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

    async def _settle(self, folder: Folder, path: Path, stable_s: float) -> None:
        if await _stable(path, stable_s):
            folder.queue.put_nowait(path)
        else:  # gone or still written: its next event brings it back
            folder.queued.discard(path)
            folder.again.discard(path)

    async def _rescan_periodically(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_EVERY_S)
            await self.rescan(CATCH_UP_STABLE_S)

    async def _work(self, folder: Folder) -> None:
        """One file at a time per job: runs of a job never overlap, bursts just queue."""
        while True:
            path = await folder.queue.get()
            try:
                await self._ingest(folder, path)
            except Exception:  # one bad file must not stop the folder
                self.log.exception("could not ingest", job=folder.job, path=str(path))
            finally:
                folder.queued.discard(path)
            if path in folder.again:  # a new file under this name: take it as one
                folder.again.discard(path)
                self.arrived(path)

    async def _ingest(self, folder: Folder, path: Path) -> None:
        result = await self.ingestor.ingest(folder.job, path, "watch")
        log = self.log.bind(job=folder.job, path=str(path), run_id=result.run_id)
        try:
            await self._settle_file(folder, path, result, log)
        except archive.Replaced:
            folder.again.add(path)
            log.warning("file replaced while its run read it; taking the new one",
                        status=result.status)
        except OSError as exc:
            log.error("cannot move the file out of the inbox", error=str(exc),
                      status=result.status)

    async def _settle_file(self, folder: Folder, path: Path, result: Ingested,
                           log: structlog.typing.FilteringBoundLogger) -> None:
        after = folder.watch.after
        if result.status in ("completed", "skipped", "unchanged") and result.file is not None:
            if result.status == "unchanged" and after == "keep":
                return  # kept in place and already ingested
            if after == "archive":
                await asyncio.to_thread(archive.archive, path, result.file)
            elif after == "delete":
                await asyncio.to_thread(archive.delete, path, result.file)
            log.info("file done", status=result.status, after=after)
        elif result.status == "failed" and result.unreadable:
            moved = await asyncio.to_thread(archive.to_failed, path, result.file,
                                            result.error, result.run_id, result.refused)
            if moved is not None and result.run_id is not None:  # a retry reads it there
                await asyncio.to_thread(self.ingestor.store.move_source, result.run_id,
                                        str(moved))
            log.warning("file moved to failed/", error=result.error, refused=result.refused)
        else:
            log.warning("file left in the inbox", status=result.status, error=result.error)


class _Events(_Handler):
    """watchdog's thread → the loop: only complete files count."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def on_closed(self, event: FileClosedEvent) -> None:
        self._hand_over(event.src_path)

    def on_created(self, event: DirCreatedEvent | FileCreatedEvent) -> None:
        """``ln -s``, ``mkfifo`` and ``ln`` make an entry no close or rename follows: a link
        or special file (refused at once) or a hard link (complete as it appears). A file
        being written has one link and is taken when closed."""
        try:
            info = os.lstat(event.src_path)
        except OSError:
            return
        if not stat.S_ISDIR(info.st_mode) and (not stat.S_ISREG(info.st_mode)
                                               or info.st_nlink > 1):
            self._hand_over(event.src_path)

    def on_deleted(self, event: DirDeletedEvent | FileDeletedEvent) -> None:
        if event.is_directory:  # a watched folder itself (its files are not watched for)
            path = Path(os.fsdecode(event.src_path))
            self.watcher.loop.call_soon_threadsafe(self.watcher.gone, path)

    def on_moved(self, event: DirMovedEvent | FileMovedEvent) -> None:
        if event.dest_path:  # empty when moved out of the folder
            self._hand_over(event.dest_path)

    def on_any_event(self, event: FileSystemEvent) -> None:
        return None

    def _hand_over(self, path: str | bytes) -> None:
        name = os.fsdecode(path)
        self.watcher.loop.call_soon_threadsafe(self.watcher.arrived, Path(name))


class _OverflowHook(logging.Handler):
    """watchdog logs lost inotify events; we answer with a rescan."""

    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(self.watcher.rescan()))


def _identity(folder: Path) -> tuple[int, int] | None:
    """The folder's (device, inode); None when no folder is there (a link is none)."""
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _listing(folder: Path) -> list[str]:
    """Every entry but folders: links and special files are found, to be refused."""
    return sorted(entry.name for entry in os.scandir(folder)
                  if not entry.is_dir(follow_symlinks=False))


async def _stable(path: Path, seconds: float) -> bool:
    """The file exists and its size does not change for ``seconds`` (a link: itself)."""
    try:
        before = os.lstat(path)
        await asyncio.sleep(seconds)
        after = os.lstat(path)
    except FileNotFoundError:
        return False
    return (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)

