"""Run notifications (SPEC §10): ``[notify]`` by webhook (JSON) and/or email.

A built-in plugin on ``syncd_run_finished`` and ``syncd_digest``: one message per run
whose status is in ``[notify] on``, or with ``digest = "daily"`` one message a day
listing them. Messages go out on the notifier's own thread and event loop, retried
with backoff; one that cannot be delivered is logged and counted
(``syncd_notifications_total{channel,outcome}``) and never changes the run.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd import hookimpl
from syncd.adapters import NotifyContext, RunSummary

MAX_DIGEST_LINES = 200


@dataclass(frozen=True, slots=True)
class Message:
    """What is sent: a subject and text for mail, a JSON document for webhooks."""

    subject: str
    text: str
    document: dict[str, Any]


def run_document(summary: RunSummary) -> dict[str, Any]:
    """A run as the webhook receives it (the control API's names)."""
    return {"syncRunId": summary.run_id, "job": summary.job, "trigger": summary.trigger,
            "status": summary.status, "sourceIdentifier": summary.source_identifier,
            "startedAt": summary.started_at, "completedAt": summary.completed_at,
            "attempt": summary.attempt, "errorMessage": summary.error_message,
            "counters": dict(summary.counters), "errors": [dict(e) for e in summary.errors]}


def run_line(summary: RunSummary) -> str:
    counters = ", ".join(f"{v} {k}" for k, v in summary.counters.items() if v)
    why = f": {summary.error_message}" if summary.error_message else ""
    return (f"run {summary.run_id} of {summary.job} ({summary.trigger}) {summary.status}"
            f"{why} [{counters or 'nothing done'}]")


def run_message(summary: RunSummary, host: str) -> Message:
    lines = [run_line(summary), f"source: {summary.source_identifier or '-'}",
             f"started: {summary.started_at or '-'}, ended: {summary.completed_at or '-'}"]
    lines += [f"error at {e.get('item') or '-'}: {e.get('message')}" for e in summary.errors]
    return Message(f"[syncd {host}] {summary.job}: run {summary.run_id} {summary.status}",
                   "\n".join(lines) + "\n",
                   {"event": "run_finished", "host": host, "run": run_document(summary)})


def digest_message(summaries: Sequence[RunSummary], since: datetime, until: datetime,
                   host: str) -> Message:
    statuses: dict[str, int] = {}
    for s in summaries:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    lines = [f"runs ended {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC: {counts}", ""]
    lines += [run_line(s) for s in summaries[:MAX_DIGEST_LINES]]
    if len(summaries) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(summaries) - MAX_DIGEST_LINES} more")
    return Message(f"[syncd {host}] daily digest: {counts}", "\n".join(lines) + "\n",
                   {"event": "digest", "host": host, "since": since.isoformat() + "Z",
                    "until": until.isoformat() + "Z", "counts": statuses,
                    "runs": [run_document(s) for s in summaries]})


class Notifier:
    """The plugin: decides what to send and hands it to its own delivery loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.host = socket.gethostname()

    @hookimpl
    def syncd_run_finished(self, summary: RunSummary, notify: NotifyContext) -> None:
        settings = notify.settings
        if settings.enabled and settings.digest == "off" and summary.status in settings.on:
            self.submit(run_message(summary, self.host), notify)

    @hookimpl
    def syncd_digest(self, summaries: Sequence[RunSummary], since: datetime,
                     until: datetime, notify: NotifyContext) -> None:
        if notify.settings.enabled and summaries:  # a quiet day sends nothing
            self.submit(digest_message(summaries, since, until, self.host), notify)

    def submit(self, message: Message, notify: NotifyContext) -> Future[None]:
        """Deliver ``message`` on the delivery loop; returns at once."""
        from .notify_send import deliver  # aiohttp and aiosmtplib: only once there is mail

        return asyncio.run_coroutine_threadsafe(deliver(message, notify),
                                                self._delivery_loop())

    def _delivery_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="syncd-notify",
                                 daemon=True).start()
                self._loop = loop
            return self._loop


plugin = Notifier()
