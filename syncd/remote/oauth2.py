"""OAuth2 access tokens (client credentials or refresh token), one cache per remote.

Runs each have an event loop in a worker thread, so an asyncio lock cannot make the
token request single-flight: the cache is process-wide, guarded by a thread lock,
and the first request that finds the token expiring starts the token request while
the others (on any loop) await the same ``concurrent.futures.Future``. A token is
renewed ``refresh_margin`` seconds before it expires, and after a 401 unless another
request renewed it meanwhile. A rotated refresh token is written to
``state_dir/remotes/NAME.json`` (atomically, mode 0600) before the new access token
is used, and read from there in preference to the config's on the next start.

Hand-written on aiohttp rather than authlib: authlib's async client is built on
httpx, and the two grants are one form POST each; what matters here — the
cross-thread single flight and the saved rotation — authlib does not provide.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from syncd.config.remotes import OAuth2Auth
from syncd.config.secrets import remember
from syncd.errors import AuthError, NetworkError, RateLimited
from syncd.remote import stats
from syncd.remote.auth import Authenticator, Credentials, reveal

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class Token:
    access: str
    expires_at: float | None  # time.monotonic(); None: until the remote refuses it


class TokenCache:
    """The access token of one remote in this process, renewed single-flight."""

    def __init__(self, remote: str, auth: OAuth2Auth, state_dir: Path | None) -> None:
        self.remote, self.auth = remote, auth
        self.state = (state_dir / "remotes" / f"{_safe(remote)}.json") if state_dir else None
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._pending: concurrent.futures.Future[Token] | None = None
        self._refresh: str | None = None  # the refresh token in use, once read
        self.requests = 0  # token requests sent (for tests and logs)

    async def token(self, session: aiohttp.ClientSession) -> str:
        """A valid access token: the cached one, or the one being fetched, or a new one."""
        with self._lock:
            if self._token is not None and self._fresh(self._token):
                return self._token.access
            pending, mine = self._pending, self._pending is None
            if pending is None:
                pending = self._pending = concurrent.futures.Future()
        if not mine:
            return (await asyncio.wrap_future(pending)).access
        try:
            token = await self._fetch(session)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else NetworkError(
                f"{self.remote}: the token request was interrupted")
            with self._lock:
                self._pending = None
            pending.set_exception(failure)
            raise
        with self._lock:
            self._token, self._pending = token, None
        pending.set_result(token)
        return token.access

    def rejected(self, access: str) -> None:
        """The remote refused ``access``: forget it unless it was renewed meanwhile."""
        with self._lock:
            if self._token is not None and self._token.access == access:
                self._token = None

    def _fresh(self, token: Token) -> bool:
        return (token.expires_at is None
                or time.monotonic() < token.expires_at - self.auth.refresh_margin)

    async def _fetch(self, session: aiohttp.ClientSession) -> Token:
        auth = self.auth
        form = {"grant_type": "client_credentials"}
        refresh = self._refresh_token()
        if refresh is not None:
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
        if auth.scope:
            form["scope"] = auth.scope
        headers = {"Accept": "application/json"}
        secrets: list[str] = [refresh or ""]
        secret = (reveal(self.remote, auth.client_secret, "auth.client_secret")
                  if auth.client_secret is not None else None)
        if secret is not None and auth.client_auth == "basic":
            pair = f"{quote(auth.client_id, safe='')}:{quote(secret, safe='')}"
            encoded = base64.b64encode(pair.encode()).decode("ascii")
            headers["Authorization"] = f"Basic {encoded}"
            secrets += [secret, encoded]
        else:
            form["client_id"] = auth.client_id
            if secret is not None:
                form["client_secret"] = secret
                secrets.append(secret)
        self.requests += 1
        scrubber = Credentials(secrets=tuple(secrets))
        status, answer = await self._post(session, form, headers, scrubber)
        return self._accept(status, answer, refresh)

    async def _post(self, session: aiohttp.ClientSession, form: dict[str, str],
                    headers: dict[str, str], credentials: Credentials) -> tuple[int, Any]:
        import aiohttp

        try:
            async with session.post(self.auth.token_url, data=form, headers=headers) as answer:
                status, body = answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.request(self.remote, "error")
            raise NetworkError(credentials.scrub(
                f"{self.remote}: token request: {type(exc).__name__}: {exc}".rstrip(": ")),
                code="token_unreachable") from None
        stats.request(self.remote, status)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    def _accept(self, status: int, answer: Any, refresh: str | None) -> Token:
        where = f"{self.remote}: token request answered {status}"
        if status == 429:
            raise RateLimited(where, code="http_429")
        if status == 408 or status >= 500:
            raise NetworkError(where, code=f"http_{status}")
        if not isinstance(answer, dict) or status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            code = error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) \
                else f"http_{status}"
            raise AuthError(f"{where}: {code}", code="token_refused")
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise AuthError(f"{where} without an access_token", code="token_refused")
        remember(access)
        rotated = answer.get("refresh_token")
        if refresh is not None and isinstance(rotated, str) and rotated and rotated != refresh:
            remember(rotated)
            self._save(rotated)  # before the new access token is used
            self._refresh = rotated
        try:
            lifetime = float(answer.get("expires_in"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return Token(access, None)
        return Token(access, time.monotonic() + lifetime)

    def _refresh_token(self) -> str | None:
        """The refresh token: the last one saved (it supersedes the config's), else the
        config's; None for the client-credentials grant."""
        if self._refresh is None and self.auth.refresh_token is not None:
            saved = self._load()
            self._refresh = saved or reveal(self.remote, self.auth.refresh_token,
                                            "auth.refresh_token")
        return self._refresh

    def _load(self) -> str | None:
        if self.state is None:
            return None
        try:
            value = json.loads(self.state.read_text()).get("refresh_token")
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(value, str) and value:
            remember(value)
            return value
        return None

    def _save(self, refresh: str) -> None:
        if self.state is None:
            return
        self.state.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.state.parent, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"refresh_token": refresh}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.state)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.state.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


_CACHES: dict[tuple[Any, ...], TokenCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(remote: str, auth: OAuth2Auth, state_dir: Path | None) -> TokenCache:
    """The process's token cache for this remote and these credentials."""
    key = (remote, auth, state_dir)
    with _CACHES_LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = TokenCache(remote, auth, state_dir)
        return cache


class OAuth2(Authenticator):
    """``Authorization: Bearer`` with the remote's cached access token."""

    def __init__(self, remote: str, auth: OAuth2Auth, state_dir: Path | None) -> None:
        self.cache = cache_for(remote, auth, state_dir)

    async def credentials(self, session: aiohttp.ClientSession) -> Credentials:
        access = await self.cache.token(session)
        return Credentials({"Authorization": f"Bearer {access}"}, secrets=(access,))

    async def rejected(self, used: Credentials) -> bool:
        self.cache.rejected(used.secrets[0])
        return True


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
