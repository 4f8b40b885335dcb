"""The hooks a syncd plugin may implement: the contract between syncd and plugins.

Every hook is prefixed ``syncd_``. A plugin module implements some of them with
``@syncd.hookimpl`` (keeping only the arguments it needs) and is found through the
``syncd`` entry-point group. A hook returning ``None`` takes no part: syncd goes on
as if the plugin did not implement it. An exception raised by a run hook is logged
and changes nothing; one raised by ``syncd_drive_inserted`` fails that drive's runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from datetime import datetime

    from syncd.adapters import NotifyContext, RunSummary
    from syncd.plugins import Registry

hookspec = pluggy.HookspecMarker("syncd")


@dataclass(frozen=True, slots=True)
class DriveInfo:
    """A USB drive that was plugged in, as udev described it."""

    name: str  # its label, else its UUID, else its device node's name
    devnode: str
    fstype: str
    label: str | None
    uuid: str | None
    serial: str | None
    device: Mapping[str, Any] = field(default_factory=dict)  # recorded on each run


@dataclass(frozen=True, slots=True)
class DriveJob:
    """A job that wants files from a drive (its ``[jobs.X.usb] patterns``)."""

    name: str
    source_type: str
    patterns: tuple[str, ...]


@hookspec
def syncd_register_adapters(registry: Registry) -> None:
    """Add source and target classes with ``registry.add_source(cls)`` / ``add_target(cls)``.

    The first class registered under a name wins, so a plugin overrides a built-in
    adapter of the same name (built-ins register with ``trylast=True``).
    """


@hookspec
def syncd_run_started(summary: RunSummary) -> None:
    """Called when a run starts (status ``in_progress``, counters from its checkpoint).

    Every run is announced, also one recorded without executing (a skipped file, a
    drive that failed). Called in a worker thread; the return value is ignored.
    """


@hookspec
def syncd_run_finished(summary: RunSummary, notify: NotifyContext) -> None:
    """Called once a run has ended (completed, failed or cancelled).

    Called in a worker thread, so a slow plugin never blocks the API; the return
    value is ignored; an exception is logged and does not change the run. ``notify``
    carries the ``[notify]`` section and the counter of delivered notifications.
    """


@hookspec
def syncd_digest(summaries: Sequence[RunSummary], since: datetime, until: datetime,
                 notify: NotifyContext) -> None:
    """Called once a day at ``[notify] digest_at`` when ``digest = "daily"``, with the
    runs that ended in ``[since, until)`` with a status in ``[notify] on`` (maybe none).

    Called in a worker thread like ``syncd_run_finished``; the return value is ignored.
    """


@hookspec
def syncd_drive_inserted(drive: DriveInfo, root: Path, jobs: Sequence[DriveJob],
                         dest: Path) -> Mapping[str, Sequence[Path]] | None:
    """Take part when a wanted drive is plugged in, while it is mounted read-only at ``root``.

    Called once per insertion, in a worker thread, with the jobs that want the drive.
    Return, for the jobs the plugin handles, the files it wrote under ``dest`` (created
    on demand; syncd then moves them beside the copies and keeps them until their runs
    are done): each becomes a run of that job, as a copied file would, and the job's
    own patterns are not copied. Return ``None`` to take no job. The first plugin that
    answers for a job wins. An exception fails every job of the drive, with nothing
    imported from it.
    """
