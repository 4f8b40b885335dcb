"""What the notification hooks are handed besides the runs: settings, a counter, a log.

``syncd_run_finished`` and ``syncd_digest`` run in a worker thread; a plugin that
delivers messages does so without holding that thread for long (it hands slow work to
its own thread) and reports each delivery's outcome with ``count``, which feeds
``syncd_notifications_total{channel,outcome}`` in ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.config.notify import NotifyConfig


def _ignore(channel: str, outcome: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class NotifyContext:
    """The ``[notify]`` section in force, and where to report what became of a message."""

    settings: NotifyConfig
    log: Any  # a structlog logger: never give it a secret
    count: Callable[[str, str], None] = _ignore  # (channel, "sent" | "failed")
