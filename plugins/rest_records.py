"""Records out of JSON answers: ``data_path``, dotted field paths, values as rows hold them.

A field path is dotted (``artist.name``, ``tags.0``): each part is a key of an object or
an index into a list. A key that itself holds a dot (``{"artist.name": …}``) is taken
as it is first. What a path does not reach is None; objects and lists are kept as
JSON text, so every value can be stored and hashed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from syncd.errors import SourceError

MISSING: Any = object()


def dig(value: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``value`` ("" is ``value`` itself), or ``MISSING``."""
    if path == "":
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def records_at(body: Any, data_path: str, where: str) -> list[Any]:
    """The records of one answer; a missing path is an empty page (the end)."""
    found = dig(body, data_path)
    if found is MISSING or found is None:
        return []
    if not isinstance(found, list):
        what = f"data_path {data_path!r}" if data_path else "the answer"
        raise SourceError(f"{where}: {what} holds {type(found).__name__}, not a list of "
                          "records (set data_path to where the records are)")
    return found


def cell(value: Any) -> Any:
    """A value as a row holds it: scalars as they are, objects and lists as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


class Picker:
    """Takes the requested fields out of each record, in their order."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = list(fields)
        self.flat = all("." not in f for f in self.fields)

    def row(self, record: dict[str, Any]) -> tuple[Any, ...]:
        if self.flat:
            return tuple(cell(record.get(f)) for f in self.fields)
        return tuple(cell(self.value(record, f)) for f in self.fields)

    @staticmethod
    def value(record: dict[str, Any], path: str) -> Any:
        if path in record:
            return record[path]
        found = dig(record, path)
        return None if found is MISSING else found


def larger(a: Any, b: Any) -> Any:
    """The larger of two incremental values (None is smallest): numbers as numbers, the
    rest as text (ISO timestamps of one format sort as text)."""
    if a is None:
        return b
    if b is None:
        return a
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
        return max(a, b)
    return a if str(a) >= str(b) else b
