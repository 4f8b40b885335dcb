"""What the REST target sends: path templates, clean payloads, and reading answers.

Kept apart from the target so the rules scripts rely on (SPEC §8 "Details") sit in
one place: the payload is the mapped record (references already translated by the
engine) without the key fields unless ``send_key``; ``clean`` trims strings and
leaves out nulls and empty strings; templates take ``{field}`` and ``{remote_id}``.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from syncd.errors import RemoteRejected


def fields_of(template: str) -> list[str]:
    """The ``{names}`` a template uses."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render(template: str, values: Mapping[str, Any], remote_id: str | None = None) -> str:
    """Fill a path template; each value is URL-quoted (a name may hold a slash)."""
    filled: dict[str, str] = {}
    for name in fields_of(template):
        value = remote_id if name == "remote_id" else values.get(name)
        if value is None or str(value).strip() == "":
            raise RemoteRejected(f"path {template!r} needs {name!r}, which is empty",
                                 code="missing_path_field")
        filled[name] = quote(str(value).strip(), safe="")
    return template.format(**filled)


def payload(record: Mapping[str, Any], *, drop: Iterable[str], clean: bool,
            overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body's fields: ``record`` without ``drop``, cleaned, with ``overrides``."""
    dropped = set(drop)
    body: dict[str, Any] = {}
    for name, value in record.items():
        if name in dropped:
            continue
        if clean:
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                continue
        body[name] = value
    body.update(overrides or {})
    return body


def wrap(body_path: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body_path = "advertiser"`` sends ``{"advertiser": {...}}``."""
    for part in reversed([p for p in body_path.split(".") if p]):
        body = {part: body}
    return body


def dig(answer: Any, path: str) -> Any:
    """The value at a dotted path (``advertiser.id``, ``items.0``); None when absent."""
    node = answer
    for part in [p for p in path.split(".") if p]:
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def parent(path: str) -> str:
    """``advertiser.id`` → ``advertiser``: where the record sits in an answer."""
    return path.rpartition(".")[0]


def remote_hash(record: Any, fields: Iterable[str]) -> str | None:
    """A digest of the remote record's values of the fields this job sends, so that
    server-side bookkeeping (timestamps, counters) does not look like a change."""
    if not isinstance(record, Mapping):
        return None
    values = {}
    for name in sorted(set(fields)):
        value = record.get(name)
        if isinstance(value, str):
            value = value.strip()
        values[name] = None if value in ("", None) else str(value)
    text = json.dumps(values, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
