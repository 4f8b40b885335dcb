"""The built-in adapters' entry points: each offers its adapter by reference, so a start
imports only the adapters its jobs name (a CSV → SQL sync loads no REST, browser or
email code). Each is a plugin of its own, named as before (``csv``, ``sql``, …), and
registers ``trylast``: a third-party plugin's adapter of the same name wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from syncd import hookimpl


class Builtin:
    """One built-in adapter, offered under its name (and aliases) by reference."""

    def __init__(self, kind: str, reference: str, *names: str) -> None:
        self.kind, self.reference, self.names = kind, reference, names

    @hookimpl(trylast=True)
    def syncd_register_adapters(self, registry: Any) -> None:
        add = registry.add_source if self.kind == "source" else registry.add_target
        for name in self.names:
            add(self.reference, name=name)


class Inventory(Builtin):
    """``inventory`` also lists a USB drive while it is mounted, for its jobs."""

    @hookimpl
    def syncd_drive_inserted(self, drive: Any, root: Path, jobs: Sequence[Any],
                             dest: Path) -> Mapping[str, list[Path]] | None:
        if not any(job.source_type in self.names for job in jobs):
            return None  # (no inventory job: its module stays unloaded)
        from syncd_builtin.inventory_source import drive_listings

        return drive_listings(drive, root, jobs, dest)


csv = Builtin("source", "syncd_builtin.csv_source:CsvSource", "csv")
inventory = Inventory("source", "syncd_builtin.inventory_source:InventorySource",
                      "inventory")
rest_source = Builtin("source", "syncd_builtin.rest_source:RestSource", "rest", "api")
sql_source = Builtin("source", "syncd_builtin.sql_source:SqlSource", "sql")
http_index = Builtin("source", "syncd_builtin.http_index:HttpIndexSource", "http_index")
browser_source = Builtin("source", "syncd_builtin.browser_source:BrowserSource", "browser")
sql = Builtin("target", "syncd_builtin.sql_target:SqlTarget", "sql")
rest_target = Builtin("target", "syncd_builtin.rest_target:RestTarget", "rest")
email_target = Builtin("target", "syncd_builtin.email_target:EmailTarget", "email")
file_target = Builtin("target", "syncd_builtin.file_target:FileTarget", "file")
browser_target = Builtin("target", "syncd_builtin.browser_target:BrowserTarget", "browser")
