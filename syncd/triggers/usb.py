"""USB drives: a plugged-in drive whose files match a job's ``[jobs.X.usb].patterns`` feeds it.

udev's netlink events arrive on the asyncio loop (``loop.add_reader``, no polling
thread). A block device with a filesystem whose udev properties have every
``[usb].match`` item is taken once per insertion (told apart by the kernel's
``DISKSEQ``, see :mod:`syncd.triggers.insertions`; a re-insertion seen while the last one is still
being finished waits for it), in a worker thread: used where an
automounter mounted it, else mounted read-only with nosuid, nodev, noexec (and
nosymfollow) under ``state_dir/media/<label>``; plugins take part first
(``syncd_drive_inserted``: the inventory plugin writes the drive's listing for its
jobs); each other job's files are found without
following symbolic links, copied to ``state_dir/usb/<drive>/<UTC time>/``, and the
drive is unmounted if we mounted it. Only then do the jobs run, through the
:class:`~syncd.triggers.ingest.FileIngestor`, on the copies (trigger ``usb``, the
drive's label, UUID, serial and device node on each run).

Files refused on the drive (links, special or oversized files) become a failed run of
their job with one ``validation`` error each; a drive that cannot be mounted, or that
is pulled out while copied, becomes a failed run of each job concerned, with nothing
imported from it (recorded by the engine, so the events, metrics and hooks hear of
them as of any run). A copy whose run completed (or was already ingested) is deleted;
others are kept for the run's retry or resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyudev
import structlog

from syncd.adapters import ItemError
from syncd.config.schema import Config
from syncd.engine import Engine
from syncd.tasks import report, supervise
from syncd.terms import file_stamp
from syncd.triggers.drive import (
    ChunkCallback,
    DriveError,
    DriveRemoved,
    MountError,
    Refusal,
    clean_partials,
    copy_off,
    find_files,
    find_mount,
    mount_entries,
    mount_point_for,
    mount_readonly,
    safe_name,
    unmount,
    wait_for_mount,
)
from syncd.triggers.ingest import FileIngestor
from syncd.triggers.insertions import Drive, Insertions, wanted
from syncd.triggers.pickup import move_in, plugins_take_part, prune
from syncd.triggers.present import insertion_key, present_devices, taken_before

UDEV_CONTROL = Path("/run/udev/control")
DONE = ("completed", "skipped", "unchanged")  # a copy in one of these states is not needed


@dataclass(slots=True)
class Pickup:
    """What came off a drive: each job's copies and refusals, or why nothing did."""

    copies: dict[str, list[Path]] = field(default_factory=dict)
    refusals: dict[str, list[Refusal]] = field(default_factory=dict)
    mount_point: Path | None = None
    mount_options: tuple[str, ...] | None = None  # None: an existing mount was used
    error: DriveError | OSError | None = None
    failed_jobs: list[str] = field(default_factory=list)  # the jobs the error concerns
    dest: Path | None = None  # the folder of the copies


class UsbMonitor:
    """Listens to udev for drives and feeds their files to the jobs that want them."""

    def __init__(self, engine: Engine, ingestor: FileIngestor, config: Config) -> None:
        self.engine, self.ingestor, self.config = engine, ingestor, config
        self.store = engine.store
        self.state_dir = Path(engine.state_dir).resolve()
        self.log = structlog.get_logger("syncd.usb")
        #: called in the copying thread after each chunk (tests use it to pull a drive)
        self.chunk_callback: ChunkCallback | None = None
        self._monitor: pyudev.Monitor | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}  # devnode -> its drive's handling
        self._aborts: dict[str, threading.Event] = {}  # devnode -> set when it is pulled
        self._insertions = Insertions()  # which events are new insertions

    @property
    def listening(self) -> bool:
        """Subscribed to udev's events (``start`` ran with ``[usb].enabled``)."""
        return self._monitor is not None

    @property
    def media_dir(self) -> Path:
        return self.state_dir / "media"

    @property
    def copies_dir(self) -> Path:
        return self.state_dir / "usb"

    def usb_jobs(self) -> dict[str, list[str]]:
        """Each job with ``usb.patterns`` (and a plan to run it), with its patterns."""
        return {name: list(job.usb.patterns) for name, job in self.config.jobs.items()
                if job.usb and job.usb.patterns and name in self.engine.plans}

    def update_config(self, config: Config) -> None:
        """Follow a reloaded config (match, limits, jobs); ``enabled`` needs a restart."""
        self.config = config

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to udev's block device events (nothing when ``[usb].enabled`` is off)."""
        if not self.config.usb.enabled:
            self.log.info("USB drives not watched ([usb].enabled = false)")
            return
        await asyncio.to_thread(self._clean_up_after_crash)
        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by(subsystem="block")
        monitor.start()
        self._monitor = monitor
        asyncio.get_running_loop().add_reader(monitor.fileno(), self._readable)
        if not UDEV_CONTROL.exists():
            self.log.warning("udev is not running: no USB drive will be noticed",
                             hint="start systemd-udevd")
        self.log.info("watching for USB drives", match=dict(self.config.usb.match),
                      jobs=list(self.usb_jobs()))
        await self.scan_present()

    async def scan_present(self) -> None:
        """Take the drives plugged in before the start, once (:mod:`.present`)."""
        try:
            devices = await asyncio.to_thread(present_devices)
        except OSError as exc:
            self.log.warning("cannot list the drives present", error=str(exc))
            return
        for devnode, props in devices:
            key = insertion_key(props.get("DISKSEQ"))
            if key is not None and await asyncio.to_thread(taken_before, self.store, key):
                self._insertions.take(Drive.from_properties(devnode, props))
                self.log.info("drive present at start already taken", devnode=devnode,
                              label=props.get("ID_FS_LABEL"))
                continue
            self.on_event("add", devnode, props)

    async def stop(self) -> None:
        """Stop listening; a copy under way is abandoned and its drive unmounted."""
        if self._monitor is not None:
            asyncio.get_running_loop().remove_reader(self._monitor.fileno())
            self._monitor = None
        for abort in self._aborts.values():
            abort.set()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _clean_up_after_crash(self) -> None:
        for partial in clean_partials(self.copies_dir):
            self.log.info("removed a copy left half-done", path=str(partial))
        for entry in mount_entries():
            if entry.mount_point.is_relative_to(self.media_dir):
                self.log.info("unmounting a drive left mounted", path=str(entry.mount_point))
                try:
                    unmount(entry.mount_point)
                except MountError as exc:
                    self.log.warning("could not unmount", error=str(exc))

    # -- udev events (on the loop) --------------------------------------------------

    def _readable(self) -> None:
        try:
            self._read_events()
        except Exception as exc:  # a bug here would leave drives unnoticed: restart
            report("usb-monitor", exc)

    def _read_events(self) -> None:
        assert self._monitor is not None
        while True:
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:  # e.g. ENOBUFS: events were lost
                self.log.warning("udev events lost", error=str(exc))
                return
            if device is None:
                return
            if device.device_node:
                self.on_event(device.action or "", device.device_node, dict(device.properties))

    def on_event(self, action: str, devnode: str, props: Mapping[str, str]) -> None:
        """A block device event: start taking files off a newly inserted, wanted drive."""
        if action == "remove" or (action == "change" and not props.get("ID_FS_TYPE")):
            if not self._insertions.removed(devnode, props):
                return  # an earlier medium's removal, seen late: not the current one's
            if devnode in self._aborts:
                self._aborts[devnode].set()  # a copy under way stops at its next chunk
            return
        if action not in ("add", "change") or not props.get("ID_FS_TYPE"):
            return
        if props.get("ID_FS_USAGE", "filesystem") != "filesystem":
            return  # a RAID member, an encrypted volume: nothing to mount
        if not wanted(props, self.config.usb.match) or self.engine.closing:
            return
        drive = Drive.from_properties(devnode, props)
        if not self._insertions.is_new(drive):
            return  # the same insertion (or an earlier one), seen again
        log = self.log.bind(label=drive.label, uuid=drive.uuid, devnode=devnode)
        jobs = self.usb_jobs()
        if not jobs:
            log.info("drive ignored: no job has [jobs.X.usb] patterns")
            return
        self._insertions.take(drive)
        previous = self._tasks.get(devnode)
        if previous is not None:  # a new medium: the old one is gone, whatever we saw
            self._aborts[devnode].set()
        abort = self._aborts[devnode] = threading.Event()
        task = supervise(self._handle(drive, jobs, log, abort, previous), f"usb-{drive.name}")
        self._tasks[devnode] = task
        task.add_done_callback(lambda done: self._done(devnode, done))

    def _done(self, devnode: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(devnode) is task:  # not a later insertion's
            del self._tasks[devnode]
            self._aborts.pop(devnode, None)

    # -- one drive --------------------------------------------------------------------

    async def _handle(self, drive: Drive, jobs: dict[str, list[str]], log: Any,
                      abort: threading.Event, previous: asyncio.Task[None] | None) -> None:
        """Take one insertion's files, after the previous insertion's handling ended."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        log.info("drive inserted", fstype=drive.fstype, jobs=list(jobs))
        try:
            pickup = await asyncio.to_thread(self._take_off, drive, jobs, log, abort)
            for job in sorted(pickup.refusals):
                await self._record_refusals(job, drive, pickup.refusals[job], log)
            if pickup.error is not None:
                for job in pickup.failed_jobs:
                    await self._record_drive_error(job, drive, pickup.error, log)
                return
            results = await asyncio.gather(
                *(self._ingest(job, drive, copies, log)
                  for job, copies in pickup.copies.items() if copies),
                return_exceptions=True)
            keep: set[Path] = set()
            for outcome in results:
                if isinstance(outcome, BaseException):
                    log.error("ingesting from the drive failed", exc_info=outcome)
                    keep.update(c for copies in pickup.copies.values() for c in copies)
                else:
                    keep.update(outcome)
            if pickup.dest is not None:
                await asyncio.to_thread(prune, pickup.dest, keep, self.copies_dir)
            log.info("drive done", copied=sum(map(len, pickup.copies.values())),
                     refused=sum(map(len, pickup.refusals.values())), kept=len(keep))
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad drive must not stop the monitor
            log.exception("could not take files off the drive")

    def _take_off(self, drive: Drive, jobs: dict[str, list[str]], log: Any,
                  abort: threading.Event) -> Pickup:
        """In a worker thread: mount (unless mounted), find, copy off, unmount."""
        pickup = Pickup()
        max_bytes = self.config.usb.max_file_mb * 2**20
        try:
            root = find_mount(drive.devnode)
            if root is None and os.geteuid() != 0:  # not ours to mount: the helper does
                root = wait_for_mount(drive.devnode, abort)
                if root is None:
                    raise MountError(f"{drive.devnode} was not mounted for syncd (is "
                                     "syncd-mount@.service installed with its udev rule?)")
            if root is None:
                root = mount_point_for(self.media_dir,
                                       safe_name(drive.label, drive.uuid,
                                                 os.path.basename(drive.devnode)))
                self.media_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                pickup.mount_options = mount_readonly(drive.devnode, drive.fstype, root)
                pickup.mount_point = root
                log.info("drive mounted", path=str(root), options=",".join(
                    pickup.mount_options))
            else:
                log.info("drive already mounted", path=str(root))
        except (DriveError, OSError) as exc:
            pickup.error, pickup.failed_jobs = exc, list(jobs)
            log.error("cannot mount the drive", error=str(exc))
            return pickup
        try:
            self._copy(root, drive, jobs, max_bytes, abort, pickup, log)
        finally:
            if pickup.mount_point is not None:
                self._unmount(pickup.mount_point, log)
        return pickup

    def _copy(self, root: Path, drive: Drive, jobs: dict[str, list[str]], max_bytes: int,
              abort: threading.Event, pickup: Pickup, log: Any) -> None:
        """Let plugins take part (``syncd_drive_inserted``), then copy the other jobs'
        files off the drive."""
        found: dict[str, list[Path]] = {}
        stamp = file_stamp()
        dest = self.copies_dir / safe_name(drive.uuid, drive.label,
                                           os.path.basename(drive.devnode)) / stamp
        taken: dict[str, list[Path]] = {}
        staging = dest.with_name(dest.name + "-plugins.partial")  # moved into dest later
        try:
            taken = plugins_take_part(self.engine, root, drive, jobs, staging)
            for job, patterns in jobs.items():
                if job in taken:
                    continue
                found[job], refused = find_files(root, patterns, max_bytes)
                if refused:
                    pickup.refusals[job] = refused
                    for refusal in refused:
                        log.warning("file refused", job=job, path=refusal.path,
                                    reason=refusal.reason)
            files = sorted({f for fs in found.values() for f in fs})
            if not files and not taken:
                return
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            copies = dict(zip(files, copy_off(files, root, dest, max_file_bytes=max_bytes,
                                              removed=abort,
                                              chunk_callback=self.chunk_callback),
                              strict=True))
            taken = move_in(taken, staging, dest)
        except (DriveError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            pickup.error = exc
            pickup.failed_jobs = ([job for job in jobs if found.get(job) or job in taken]
                                  or list(jobs))
            log.error("copying off the drive failed; nothing is imported from it",
                      error=str(exc))
            shutil.rmtree(dest, ignore_errors=True)
            return
        pickup.dest = dest
        pickup.copies = {job: [copies[f] for f in fs] for job, fs in found.items()}
        pickup.copies.update(taken)
        log.info("files copied off the drive", files=len(files), by_plugins=len(taken),
                 path=str(dest))

    def _unmount(self, target: Path, log: Any) -> None:
        try:
            unmount(target)
        except MountError as exc:
            log.error("cannot unmount the drive", path=str(target), error=str(exc))
            return
        with contextlib.suppress(OSError):
            target.rmdir()
        log.info("drive unmounted", path=str(target))

    async def _ingest(self, job: str, drive: Drive, copies: list[Path], log: Any
                      ) -> set[Path]:
        """Run ``job`` on each copy in turn; returns the copies still needed."""
        keep = set()
        for copy in copies:
            result = await self.ingestor.ingest(job, copy, "usb", device=drive.info)
            log.info("file ingested", job=job, path=str(copy), run_id=result.run_id,
                     status=result.status, error=result.error)
            if result.status not in DONE:
                keep.add(copy)
        return keep

    # -- failed runs --------------------------------------------------------------------

    async def _record_refusals(self, job: str, drive: Drive, refused: list[Refusal],
                               log: Any) -> None:
        errors = [ItemError("validation", f"refused_{r.code}", str(r), item=r.path)
                  for r in refused]
        noun = "file" if len(refused) == 1 else "files"
        message = f"{len(refused)} {noun} on drive {drive.name} refused: {refused[0]}"
        run_id = await self._failed_run(job, drive, message, errors)
        log.warning("files refused", job=job, run_id=run_id, count=len(refused))

    async def _record_drive_error(self, job: str, drive: Drive, error: Exception,
                                  log: Any) -> None:
        code = ("drive_removed" if isinstance(error, DriveRemoved) else
                "mount_failed" if isinstance(error, MountError) else "copy_failed")
        message = (str(error) if isinstance(error, DriveError)
                   else f"could not copy files off drive {drive.name}: {error}")
        errors = [ItemError("system", code, message, item=getattr(error, "item", ""))]
        run_id = await self._failed_run(job, drive, message, errors)
        log.error("run failed", job=job, run_id=run_id, error=message)

    async def _failed_run(self, job: str, drive: Drive, message: str,
                          errors: list[ItemError]) -> int:
        """A failed run of ``job``, through the engine (events, metrics, hooks)."""
        return await self.engine.record_failed(job, "usb", f"usb:{drive.name}", message,
                                               errors, device=drive.info)
