"""Snapshots: a drive's listing written to JSON Lines before the drive is unmounted.

The inventory source reads a snapshot exactly like the folder it lists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncd.errors import SourceError

from .inventory_walk import Unlisted, walk

SNAPSHOT_VERSION = 1
SNAPSHOT_MAGIC = "syncd_inventory"
HEADER_MAX = 1024 * 1024  # a snapshot's header line is far shorter
DEVICE_KEYS = ("uuid", "ID_FS_UUID", "label", "ID_FS_LABEL", "serial", "ID_SERIAL")


def read_header(line: bytes, path: Path) -> dict[str, Any]:
    """The header of a snapshot file; a ``SourceError`` when it is not one."""
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or SNAPSHOT_MAGIC not in header:
        raise SourceError(f"{path} is neither a folder nor an inventory snapshot")
    if header[SNAPSHOT_MAGIC] != SNAPSHOT_VERSION or "scope" not in header:
        raise SourceError(f"{path}: unsupported snapshot version {header[SNAPSHOT_MAGIC]!r}")
    return header


def device_key(device: Mapping[str, Any]) -> str:
    """What identifies a drive across plugs: its filesystem UUID, else its label."""
    for key in DEVICE_KEYS:
        value = device.get(key)
        if value:
            return str(value)
    return ""


def write_snapshot(root: Path, out: Path, device: dict[str, Any], *, max_depth: int = 32) -> int:
    """Write the listing of ``root`` (a mounted drive) to ``out`` as JSON Lines.

    The first line is the header (``syncd_inventory``, ``device``, ``scope``,
    ``root``), then one ``{"path", "size", "mtime"}`` line per file in walk order, and
    ``{"path", "error"}`` for a folder that could not be listed. The file appears
    complete or not at all. Returns the number of files listed.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise SourceError(f"cannot list {root}: not a folder")
    scope = device_key(device) or str(root)
    header = {SNAPSHOT_MAGIC: SNAPSHOT_VERSION, "device": device, "scope": scope, "root": str(root)}
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    count = 0
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False, default=str) + "\n")
            for entry in walk(root, max_depth):
                if isinstance(entry, Unlisted):
                    line: dict[str, Any] = {"path": entry.path, "error": entry.message}
                else:
                    line = {"path": entry.path, "size": entry.size, "mtime": entry.mtime}
                    count += 1
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
