"""Reading the folder listings web servers generate: what each folder holds.

    nginx_json   ``autoindex_format json``: ``[{"name", "type", "mtime", "size"}]``
    nginx_xml    ``autoindex_format xml``: ``<list><file mtime size>name</file>…</list>``
    html         every HTML index alike: nginx's ``<pre>`` lines (exact or rounded sizes),
                 Apache mod_autoindex (fancy table, fancy ``<pre>``, plain list) and
                 lighttpd's ``dir-listing`` table

HTML is read by its links, not by one server's layout: a link counts when it names a
direct child of the folder listed (parent, sort, icon and off-host links do not), its
href gives the full name (link texts are cut at 50 characters by nginx), and the text
after it up to the end of its row gives the date and size. HTML times carry no zone
and are taken as UTC (nginx's default); sizes such as ``1.2K`` are 1024-based and as
exact as the server printed them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit

Format = Literal["nginx_json", "nginx_xml", "html"]
FORMATS: tuple[Format, ...] = ("nginx_json", "nginx_xml", "html")
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5,
         "E": 1024**6}
MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
# nginx and Apache 2.2 (12-Jun-2025 14:21), Apache 2.4 (2025-06-12 14:21), lighttpd
# (2025-Jun-12 14:21:00)
DATES = (
    re.compile(r"(?P<d>\d{1,2})-(?P<b>[A-Z][a-z]{2})-(?P<y>\d{4})\s+(?P<H>\d{2}):(?P<M>\d{2})"
               r"(?::(?P<S>\d{2}))?"),
    re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\s+(?P<H>\d{2}):(?P<M>\d{2})"
               r"(?::(?P<S>\d{2}))?"),
    re.compile(r"(?P<y>\d{4})-(?P<b>[A-Z][a-z]{2})-(?P<d>\d{2})\s+(?P<H>\d{2}):(?P<M>\d{2})"
               r"(?::(?P<S>\d{2}))?"),
)
SIZE = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s?(?P<u>[KMGTPE])?(?:i?B)?(?!\S)", re.IGNORECASE)
# what ends the text that belongs to a link: its row, list item or line
ROW_TAGS = frozenset({"tr", "li", "pre", "table", "ul", "ol", "p", "div", "br", "hr"})


class ListingError(ValueError):
    """A body that is no directory listing of a known kind."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a folder: its decoded name, and what the server said of it."""

    name: str
    is_dir: bool
    size: int | None = None
    modified_at: str | None = None  # ISO-8601 UTC, e.g. 2025-06-12T14:21:00Z


def detect(body: bytes, content_type: str = "") -> Format:
    """The listing's kind, by its content type, else by how its body starts."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/json", "text/json") or kind.endswith("+json"):
        return "nginx_json"
    if kind in ("text/xml", "application/xml") or kind.endswith("+xml"):
        return "nginx_xml"
    if kind in ("text/html", "application/xhtml+xml"):
        return "html"
    start = body.lstrip()[:200].lower()
    if start.startswith((b"[", b"{")):
        return "nginx_json"
    if (start.startswith(b"<?xml") and b"<html" not in start) or start.startswith(b"<list"):
        return "nginx_xml"
    if b"<html" in start or b"<!doctype html" in start or b"<a " in body[:65536].lower():
        return "html"
    raise ListingError("neither JSON, XML nor HTML")


def parse(body: bytes, kind: Format, folder_url: str) -> list[Listed]:
    """The entries of one folder's listing (``folder_url`` ends with ``/``)."""
    try:
        if kind == "nginx_json":
            return _json(body)
        if kind == "nginx_xml":
            return _xml(body)
        return _html(body.decode("utf-8", "replace"), folder_url)
    except ListingError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ET.ParseError) as exc:
        raise ListingError(f"not an {kind} listing: {exc}") from None


def _json(body: bytes) -> list[Listed]:
    data = json.loads(body)
    if not isinstance(data, list):
        raise ListingError("not an nginx_json listing: the answer is not a JSON list")
    out = []
    for item in data:
        kind, name = item.get("type"), item.get("name")
        if kind not in ("file", "directory") or not isinstance(name, str):
            continue  # "other": sockets, dangling links
        size = item.get("size")
        out.append(Listed(name, kind == "directory",
                          int(size) if isinstance(size, int | float) else None,
                          _http_date(item.get("mtime"))))
    return out


def _xml(body: bytes) -> list[Listed]:
    root = ET.fromstring(body)
    if root.tag != "list":
        raise ListingError(f"not an nginx_xml listing: the root is <{root.tag}>, not <list>")
    out = []
    for element in root:
        if element.tag not in ("file", "directory") or not element.text:
            continue
        size = element.get("size")
        out.append(Listed(element.text, element.tag == "directory",
                          int(size) if size and size.isdigit() else None,
                          _iso(element.get("mtime"))))
    return out


def _html(text: str, folder_url: str) -> list[Listed]:
    links = _Links()
    links.feed(text)
    links.close()
    if not links.found and "<a" not in text.lower():
        raise ListingError("not an html listing: no links at all")
    seen: dict[str, Listed] = {}
    for href, tail in links.found:
        child = _child(folder_url, href)
        if child is None or child[0] in seen:
            continue
        name, is_dir = child
        modified_at, size = _date_and_size(tail)
        seen[name] = Listed(name, is_dir, None if is_dir else size, modified_at)
    return list(seen.values())


def _child(folder_url: str, href: str) -> tuple[str, bool] | None:
    """(name, is_dir) when ``href`` is a direct child of the folder; else None."""
    target = urlsplit(urljoin(folder_url, href.strip()))
    here = urlsplit(folder_url)
    if (target.scheme, target.netloc) != (here.scheme, here.netloc) or target.query:
        return None
    path, folder = unquote(target.path, errors="replace"), unquote(here.path, errors="replace")
    if not path.startswith(folder):
        return None
    rest = path[len(folder):]
    is_dir = rest.endswith("/")
    name = rest[:-1] if is_dir else rest
    if not name or "/" in name or name in (".", ".."):
        return None
    return name, is_dir


def _date_and_size(tail: str) -> tuple[str | None, int | None]:
    """A row's date (as UTC) and the first size after it; (None, None) without a date."""
    for pattern in DATES:
        match = pattern.search(tail)
        if match:
            break
    else:
        return None, None
    parts = match.groupdict()
    month = int(parts["m"]) if parts.get("m") else MONTHS.get(parts.get("b") or "", 0)
    try:
        moment = datetime(int(parts["y"]), month, int(parts["d"]), int(parts["H"]),
                          int(parts["M"]), int(parts["S"] or 0), tzinfo=UTC)
    except ValueError:
        return None, None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), parse_size(tail[match.end():])


def parse_size(text: str) -> int | None:
    """The size ``text`` starts with: ``1234``, ``1.2K``, ``12M``, ``1.5 MB``; ``-`` is None."""
    match = SIZE.match(text.replace("\xa0", " ").strip())
    return round(float(match["n"]) * UNITS[(match["u"] or "").upper()]) if match else None


def _http_date(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Links(HTMLParser):
    """Every ``<a href>`` of a page, with the text after it up to the end of its row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._href: str | None = None  # inside this link
        self._tail: list[str] | None = None  # collecting after a link

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._end_row()
            href = dict(attrs).get("href")
            self._href = href if href else None
        elif tag in ROW_TAGS:
            self._end_row()
        elif tag in ("td", "th") and self._tail is not None:
            self._tail.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.found.append((self._href, ""))
            self._tail, self._href = [], None
        elif tag in ROW_TAGS:
            self._end_row()
        elif tag in ("td", "th") and self._tail is not None:
            self._tail.append(" ")

    def handle_data(self, data: str) -> None:
        if self._tail is None or self._href is not None:
            return
        line, newline, _ = data.partition("\n")
        self._tail.append(line)
        if newline:  # a <pre> listing: one entry a line
            self._end_row()

    def _end_row(self) -> None:
        if self._tail is not None and self.found:
            href, _ = self.found[-1]
            self.found[-1] = (href, "".join(self._tail))
        self._tail = None

    def close(self) -> None:
        super().close()
        self._end_row()
