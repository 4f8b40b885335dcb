"""A fake API behind OAuth2 (and static credentials): a real aiohttp server.

``POST /token`` grants ``client_credentials`` and ``refresh_token`` (client
authenticated by HTTP basic or in the form), optionally rotating refresh tokens and
answering slowly so that concurrent clients overlap. ``GET /api/data`` wants a
bearer token it issued and has not expired or revoked; ``/echo`` answers with the
credentials a request carried, for the static auth types.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer


class OAuthServer(ThreadedServer):
    def __init__(self, client_id: str = "client", client_secret: str = "client-secret-XYZ",
                 expires_in: float | None = 3600, refresh_token: str = "rt-0",
                 rotate: bool = False, token_delay: float = 0.0) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.expires_in, self.rotate, self.token_delay = expires_in, rotate, token_delay
        self.refresh_tokens = {refresh_token}
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.token_requests: list[dict[str, str]] = []
        self.api_requests = 0
        self.reject_all = False  # every API request answers 401
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/api/data", self._data)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/reflect", self._reflect)
        return app

    def revoke_all(self) -> None:
        """The server forgets every access token it issued (they answer 401 from now)."""
        with self._lock:
            self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        with self._lock:
            self.token_requests.append(form)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        client = _basic(request.headers.get("Authorization", ""))
        if client is None:
            client = (form.get("client_id", ""), form.get("client_secret", ""))
        if client != (self.client_id, self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        answer: dict[str, Any] = {"token_type": "Bearer"}
        with self._lock:
            if form.get("grant_type") == "refresh_token":
                if form.get("refresh_token") not in self.refresh_tokens:
                    return web.json_response({"error": "invalid_grant"}, status=400)
                if self.rotate:
                    self.refresh_tokens = {f"rt-{next(self._ids)}"}
                    answer["refresh_token"] = next(iter(self.refresh_tokens))
            elif form.get("grant_type") != "client_credentials":
                return web.json_response({"error": "unsupported_grant_type"}, status=400)
            access = f"at-{next(self._ids)}-{time.monotonic_ns()}"
            lifetime = self.expires_in if self.expires_in is not None else 10**9
            self.tokens[access] = time.monotonic() + lifetime
        answer["access_token"] = access
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    async def _data(self, request: web.Request) -> web.Response:
        self.api_requests += 1
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        with self._lock:
            valid = self.tokens.get(token, 0.0) > time.monotonic()
        if self.reject_all or not header.startswith("Bearer ") or not valid:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({"items": [1, 2, 3]})

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers),
                                  "query": dict(request.query)})

    async def _reflect(self, request: web.Request) -> web.Response:
        """A careless API: its error answer repeats the credentials it was sent."""
        return web.Response(status=400, text=f"bad request {dict(request.headers)} "
                            f"{dict(request.query)}")


def _basic(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password
