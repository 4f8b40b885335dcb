"""Walking a file server's folders in a stable order, listing a few folders ahead.

Each folder's names are sorted and folders are entered where they sort, so the walk
order is the order of the relative paths compared part by part (as the ``inventory``
source walks a disk). A checkpoint is then the last path produced: a resumed walk
lists again only the folders on the way down to it (at most ``depth`` of them) and
never a folder that lies wholly before it.

Only direct children of a listed folder are entered (a link never leads above the
start folder or to another host), each folder at most once, down to ``depth``. The
next folders of the walk are listed ahead, as many as the remote's concurrency, so
a server far away is not asked one folder at a time.

A subfolder that answers 401, 403, 404 or another refusal, or whose answer is no
listing, is an ``Unlisted`` entry (an item error) and the walk goes on; the start
folder failing fails the read, and so do network errors and 5xx answers once the
client's retries are spent (the run is retried from its checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from syncd.adapters import ErrorType, ItemError
from syncd.errors import AdapterError, AuthError, NetworkError, SourceError

if TYPE_CHECKING:
    from syncd.remote.http import HttpClient

    from .http_index_parse import Listed

# .http_index_parse (html.parser, xml.etree, its patterns) loads on the first listing,
# not with the plugin: every command's start-up imports every plugin.

FormatOption = Literal["auto", "nginx_json", "nginx_xml", "html"]
#: what a path segment may hold unescaped (RFC 3986 ``pchar``), so that every listing
#: format gives a file the same URL
PCHAR = "-._~!$&'()*+,;=:@"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file of the walk: decoded relative path, absolute URL, what the listing said."""

    path: str
    url: str
    size: int | None
    modified_at: str | None


@dataclass(frozen=True, slots=True)
class Unlisted:
    """A folder that could not be listed: its relative path and the item error."""

    path: str
    error: ItemError


def child_url(folder_url: str, name: str, is_dir: bool) -> str:
    return folder_url + quote(name, safe=PCHAR) + ("/" if is_dir else "")


class Walker:
    """The files below ``root_url`` (which ends with ``/``), in walk order."""

    def __init__(self, client: HttpClient, root_url: str, depth: int,
                 listing_format: FormatOption = "auto", ahead: int = 4) -> None:
        self.client, self.root_url, self.depth = client, root_url, depth
        self.format, self.ahead = listing_format, max(1, ahead)
        self.listed = 0  # folders listed by this walk
        self._visited: set[str] = set()

    async def walk(self, after: str | None = None) -> AsyncIterator[FileEntry | Unlisted]:
        """Files (and folders that could not be listed) after the path ``after``."""
        after_key = after.split("/") if after else None
        tasks: dict[str, asyncio.Task[list[Listed]]] = {}
        try:
            entries = await self._root()
            async for item in self._folder([], self.root_url, entries, after_key, tasks):
                yield item
        finally:
            for task in tasks.values():
                task.cancel()
            for task in tasks.values():
                with contextlib.suppress(BaseException):
                    await task

    async def _root(self) -> list[Listed]:
        """The start folder's entries; any failure there fails the read."""
        from .http_index_parse import ListingError

        self._visited.add(self.root_url)
        try:
            return await self.list_folder(self.root_url)
        except ListingError as exc:
            raise SourceError(f"{self.root_url} is no folder listing: {exc}") from None
        except (AuthError, NetworkError):
            raise
        except AdapterError as exc:
            raise SourceError(f"the start folder cannot be listed: {exc}") from None

    async def list_folder(self, url: str) -> list[Listed]:
        """One folder's entries, sorted by name, hidden names left out."""
        from .http_index_parse import detect, parse

        response = await self.client.request("GET", url)
        self.listed += 1
        if self.format == "auto":
            content_type = {k.lower(): v for k, v in response.headers.items()}.get(
                "content-type", "")
            kind = detect(response.body, content_type)
        else:
            kind = self.format
        entries = parse(response.body, kind, url)
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)

    async def _folder(self, prefix: list[str], url: str, entries: list[Listed],
                      after_key: list[str] | None,
                      tasks: dict[str, asyncio.Task[list[Listed]]]
                      ) -> AsyncIterator[FileEntry | Unlisted]:
        from .http_index_parse import ListingError

        plan: list[tuple[Listed, list[str] | None]] = []  # what to produce, in order
        for entry in entries:
            key = [*prefix, entry.name]
            head = after_key[:len(key)] if after_key is not None else None
            if head is not None and (key < head or (key == head and not entry.is_dir)
                                     or key == after_key):
                continue  # wholly before the resume point, or the resume point itself
            if entry.is_dir and len(key) > self.depth:
                continue
            plan.append((entry, after_key if key == head else None))
        folders = [child_url(url, e.name, True) for e, _ in plan if e.is_dir]
        position = -1  # of the folder being entered, in ``folders``
        for entry, child_after in plan:
            path_parts = [*prefix, entry.name]
            path = "/".join(path_parts)
            if not entry.is_dir:
                yield FileEntry(path, child_url(url, entry.name, False), entry.size,
                                entry.modified_at)
                continue
            position += 1
            folder = folders[position]
            if folder in self._visited:
                continue
            for upcoming in folders[position:position + self.ahead]:  # list a few ahead
                if upcoming not in tasks and upcoming not in self._visited:
                    tasks[upcoming] = asyncio.ensure_future(self.list_folder(upcoming))
            self._visited.add(folder)
            try:
                listing = await tasks.pop(folder)
            except ListingError as exc:
                yield Unlisted(path, ItemError("parsing", "bad_listing",
                                               f"{folder} is no folder listing: {exc}", path))
                continue
            except (NetworkError, asyncio.CancelledError):
                raise
            except AdapterError as exc:
                kind: ErrorType = "auth" if isinstance(exc, AuthError) else "system"
                yield Unlisted(path, ItemError(kind, exc.code, str(exc), path))
                continue
            async for item in self._folder(path_parts, folder, listing, child_after, tasks):
                yield item
