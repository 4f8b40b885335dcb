"""Room kept on the SQLite store's disk, given up to record that the disk is full.

When a run fills the disk, SQLite rolls its batch back, but the failure itself must
still be written: without room the run would stay ``in_progress`` until a restart.
A small file beside the database holds that room; it is deleted to record the failure
and made again when a later run starts on a disk with space.
"""

from __future__ import annotations

import os
from pathlib import Path

RESERVE_BYTES = 256 * 1024


class Reserve:
    """The reserve file of one SQLite database (``None``: a server database, nothing kept)."""

    def __init__(self, database_file: Path | None) -> None:
        self.path = (database_file.with_name(database_file.name + ".reserve")
                     if database_file is not None else None)

    def keep(self) -> None:
        """Make the reserve if it is missing; on a disk still full, try again next time."""
        if self.path is None or self.path.exists():
            return
        partial = self.path.with_name(self.path.name + ".tmp")
        try:
            with partial.open("wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
                f.flush()
                os.fsync(f.fileno())  # tmpfs and ext4 alike: the blocks are really taken
            partial.replace(self.path)
        except OSError:
            partial.unlink(missing_ok=True)

    def release(self) -> bool:
        """Free the room; whether there was any to free."""
        if self.path is None:
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
