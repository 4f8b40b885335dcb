"""``GET /``: the status page, three static files served by the daemon itself (SPEC §12).

No build step and nothing from elsewhere: ``index.html``, ``app.js`` and ``style.css``
ship as package data. They hold no data (the page asks the API for everything, with
the bearer token), so they need no token. A strict Content-Security-Policy allows
only these files and calls back to this origin: no inline script or style, no frames.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from syncd.api.envelope import NotFound

routes = web.RouteTableDef()
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-cache"}


def read_static(name: str) -> bytes:
    """One of the page's files, from the installed package."""
    return (resources.files("syncd.api") / "static" / name).read_bytes()


def _file(name: str) -> web.Response:
    if name not in FILES:
        raise NotFound(f"no endpoint /static/{name}")
    return web.Response(body=read_static(name), content_type=FILES[name], charset="utf-8",
                        headers=HEADERS)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return _file("index.html")


@routes.get("/static/{name}")
async def static(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])
