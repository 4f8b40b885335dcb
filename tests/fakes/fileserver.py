"""A file server for the ``http_index`` tests: a real aiohttp server on 127.0.0.1.

It serves one directory tree under a route prefix per listing format (``/nginx-json/``,
``/nginx-xml/``, ``/nginx-html/``, ``/nginx-html-rounded/``, ``/apache/``,
``/apache-pre/``, ``/apache-plain/``, ``/lighttpd/``): a folder's URL (with its
trailing slash) answers with the listing as that server writes it, a file's with its
bytes, to GET and HEAD alike; a folder without its slash is redirected, as nginx does.
The tree is read on every request, so a test changes the server by changing files.

Requests are counted by method (``methods``) and kept (``requests``); faults are
injected by path below the prefix, in every format at once: an error status (with
``Retry-After``) for the next ``times`` requests or for good, or a body that is no
listing. It runs on a loop of its own in a thread, like ``syncd.testing``'s
``MemoryRemote``, so sync and async code can use it.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.fakes.fileserver_listings import RENDERERS, Item
from tests.fakes.threaded import ThreadedServer

FORMATS = tuple(RENDERERS)
NOT_FOUND = ("<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>"
             "404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@dataclass
class Fault:
    status: int = 503
    times: int | None = None  # None: for good
    retry_after: float | None = None
    garbage: bool = False  # a 200 whose body is no listing


@dataclass
class FileServer(ThreadedServer):
    """Start with ``with FileServer(root) as server:``; ``server.url`` is its base URL."""

    root: Path
    url: str = ""
    methods: Counter[str] = field(default_factory=Counter)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def base(self, fmt: str) -> str:
        """The URL of the tree's root in one listing format."""
        assert fmt in FORMATS, fmt
        return f"{self.url}/{fmt}/"

    # -- faults and counters ----------------------------------------------------------

    def fail(self, path: str, status: int = 503, times: int | None = None,
             retry_after: float | None = None) -> None:
        """Requests for ``path`` (below the prefix, e.g. ``"locked/"``) answer ``status``."""
        with self._lock:
            self.faults[path] = Fault(status, times, retry_after)

    def garble(self, path: str) -> None:
        """The folder ``path`` answers 200 with a body that is no listing."""
        with self._lock:
            self.faults[path] = Fault(200, None, garbage=True)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.methods.clear()
            self.requests.clear()

    def count(self, method: str, under: str = "") -> int:
        """Requests of ``method`` so far, optionally only those whose path starts so."""
        return sum(1 for m, p in self.requests if m == method and p.startswith(under))

    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[path]
            return fault

    # -- the server -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{fmt}/{tail:.*}", self._handle)
        app.router.add_route("HEAD", "/{fmt}/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.methods[request.method] += 1
            self.requests.append((request.method, request.path))
        fmt, tail = request.match_info["fmt"], request.match_info["tail"]
        if fmt not in RENDERERS:
            return web.Response(status=404, text=NOT_FOUND, content_type="text/html")
        fault = self._fault(tail)
        if fault is not None and fault.garbage:
            return web.Response(body=b"\x00\x01 this is no listing \xff",
                                content_type="application/octet-stream")
        if fault is not None:
            headers = ({"Retry-After": f"{fault.retry_after:g}"}
                       if fault.retry_after is not None else {})
            return web.Response(status=fault.status, headers=headers, text="injected fault")
        target = (self.root / tail).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.exists():
            return web.Response(status=404, text=NOT_FOUND, content_type="text/html")
        if target.is_dir():
            if not request.path.endswith("/"):
                raise web.HTTPMovedPermanently(request.path + "/")
            content_type, body = RENDERERS[fmt](request.path, self._items(target))
            return web.Response(body=body.encode(), headers={"Content-Type": content_type})
        data = target.read_bytes()
        return web.Response(body=data, content_type="application/octet-stream",
                            headers={"Last-Modified": _http_date(target.stat().st_mtime)})

    @staticmethod
    def _items(folder: Path) -> list[Item]:
        items = []
        for child in folder.iterdir():
            info = child.stat()
            items.append(Item(child.name, child.is_dir(), info.st_size, info.st_mtime))
        return items


def _http_date(mtime: float) -> str:
    from email.utils import formatdate

    return formatdate(mtime, usegmt=True)
