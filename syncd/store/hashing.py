"""The hashes the id map keeps: of what was sent (``content_hash``) and of what the
remote held when last seen (``remote_hash``). Defined once, so that the outbox, a
target comparing remote versions and the conflict review queue agree byte for byte."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def record_hash(values: Sequence[Any]) -> str:
    """The content hash of a record's values, in mapping order, as the id map keeps it."""
    text = "\x1f".join("" if v is None else str(v) for v in values)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def remote_hash(record: Mapping[str, Any]) -> str:
    """The hash of a remote record as received (any JSON object): key order and
    whitespace do not matter, values do."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def pair_hash(values: Mapping[str, Any]) -> str:
    """The hash of a record's shared fields in a bidirectional pair (by table column).

    Both sides compare values as trimmed text, and an empty text as no value: what a
    REST payload cleans away and what a text column gives back compare equal.
    """
    parts = []
    for name in sorted(values):
        value = values[name]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        else:
            text = "" if value is None else str(value).strip()
        parts.append(f"{name}\x1e{text}")
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()
