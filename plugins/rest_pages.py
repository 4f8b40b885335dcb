"""Paginators: where the next page is, when the pages end, and when a server loops.

A ``Pager`` walks one read from a position (what a checkpoint holds): ``{"page": N}``,
``{"offset": N}``, ``{"cursor": C}`` or ``{"url": U}`` (link and next_url; None is the
first request). Every type ends on an empty page; page and offset also on a page
shorter than the limit sent; cursor on an empty or missing cursor; link without a
``rel="next"``; next_url on an empty or missing URL.

The guards end a read that would never end (dlt's paginators have looped): a cursor
or next URL seen before, or a page whose body is byte for byte one seen before in the
read, is a ``PaginationLoop`` error that fails the run, naming the request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from syncd.errors import SourceError

from .rest_options import Pagination
from .rest_records import MISSING, dig

LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)')
REL = re.compile(r'rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', re.IGNORECASE)


class PaginationLoop(SourceError):
    """The server answered a page, cursor or next URL it had given before."""

    code = "pagination_loop"


def next_link(headers: Mapping[str, str]) -> str | None:
    """The ``rel="next"`` target of the ``Link`` header (RFC 8288), if any."""
    value = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for match in LINK.finditer(value):
        rel = REL.search(match[2])
        if rel and "next" in (rel[1] or rel[2] or "").lower().split():
            return match[1].strip()
    return None


class Pager:
    """One read's walk through the pages; ``position`` is JSON, for the checkpoint."""

    def __init__(self, pagination: Pagination, position: Mapping[str, Any] | None = None,
                 last_hash: str | None = None) -> None:
        self.p = pagination
        self.position: dict[str, Any] = dict(position) if position else self.first()
        self.last_hash = last_hash
        self._hashes = {last_hash} if last_hash else set()
        self._seen = {str(v) for v in self.position.values() if v is not None}

    def first(self) -> dict[str, Any]:
        kind = self.p.type
        if kind == "page":
            return {"page": self.p.start}
        if kind == "offset":
            return {"offset": 0}
        if kind == "cursor":
            return {"cursor": None}
        if kind in ("link", "next_url"):
            return {"url": None}
        return {}

    def request(self) -> tuple[str | None, dict[str, Any]]:
        """The next request's URL (None: the source's own path) and paging parameters."""
        url = self.position.get("url")
        if url is not None:
            return url, {}  # a next URL carries its own parameters
        params: dict[str, Any] = {}
        if self.p.limit_param is not None:
            params[self.p.limit_param] = self.p.page_size
        kind = self.p.type
        if kind == "page":
            params[self.p.page_param] = self.position["page"]
        elif kind == "offset":
            params[self.p.offset_param] = self.position["offset"]
        elif kind == "cursor" and self.position.get("cursor") is not None:
            params[self.p.cursor_param] = self.position["cursor"]
        return None, params

    def advance(self, records: list[Any], body: bytes, answer: Any,
                headers: Mapping[str, str], requested: str) -> bool:
        """Move past the page just read; False when it was the last one.

        ``answer`` is the parsed body, ``requested`` the full URL asked (for relative next
        URLs and for the message of a loop).
        """
        digest = hashlib.sha256(body).hexdigest()
        if digest in self._hashes:
            raise PaginationLoop(f"{requested} answered a page identical to one read before "
                                 "in this run: the server ignores the paging parameters or "
                                 "loops; stopped instead of reading it forever")
        self._hashes.add(digest)
        self.last_hash = digest
        kind = self.p.type
        if not records or kind == "none":
            return False
        size = self.p.page_size
        if kind in ("page", "offset"):
            if size is not None and len(records) < size:
                return False
            if kind == "page":
                self.position = {"page": self.position["page"] + 1}
            else:
                self.position = {"offset": self.position["offset"] + len(records)}
            return True
        if kind == "cursor":
            found = dig(answer, self.p.cursor_path)
            if found is MISSING or found is None or found == "":
                return False
            self._once(str(found), "cursor", requested)
            self.position = {"cursor": found}
            return True
        if kind == "link":
            target = next_link(headers)
        else:
            found = dig(answer, self.p.next_path)
            target = None if found is MISSING or not found else str(found)
        if target is None:
            return False
        url = urljoin(requested, target)
        self._seen.add(requested)
        self._once(url, "next URL", requested)
        self.position = {"url": url}
        return True

    def _once(self, value: str, what: str, requested: str) -> None:
        if value in self._seen:
            raise PaginationLoop(f"{requested} gave the {what} {value!r} again: the server "
                                 "loops; stopped instead of reading it forever")
        self._seen.add(value)
