"""Which runs only this host can run: those of files nobody else sees."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: triggers whose files are on this host only (a watched inbox, copies off a USB drive)
LOCAL_TRIGGERS = frozenset({"watch", "usb"})


class Affinity:
    """``affinity(trigger, identifier)``: this host's name, or None when any host may run it.

    A file outside ``[fleet] shared_paths`` (or any file a watched folder or a USB drive
    delivered) stays with this host; URLs and files on the shared paths go to any host.
    """

    def __init__(self, host: str, shared_paths: Sequence[Path]) -> None:
        self.host = host
        self.shared = [p.resolve() for p in shared_paths]

    def __call__(self, trigger: str, identifier: str | None) -> str | None:
        if trigger in LOCAL_TRIGGERS:
            return self.host
        if not identifier or "://" in identifier:
            return None
        path = Path(identifier)
        if not path.is_absolute():
            return None  # a name the adapter resolves itself (a table, a query)
        resolved = path.resolve()
        if any(resolved == root or resolved.is_relative_to(root) for root in self.shared):
            return None
        return self.host
