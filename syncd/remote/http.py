"""HTTP clients for adapters: one remote's base URL, headers, timeout, rate limit and retries.

aiohttp is imported on first use, so runs that never reach a remote do not pay for it.
Answers are sorted into the adapter errors every target reports alike: 401 and 403
are ``AuthError``, 409 ``ConflictError``, 429 ``RateLimited`` and 408 or 5xx
``NetworkError`` (both retried with exponential backoff and full jitter, honouring
``Retry-After``: jitter never shortens it, and one longer than ``max_delay`` fails the
request at once for the run to retry later), any other 4xx ``RemoteRejected`` (not
retried). A 401 renews OAuth2 credentials and is sent once more. No header or body
is logged: they may carry secrets, and secrets are scrubbed from error messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from syncd.config.remotes import NoAuth, RemoteConfig, parse_auth
from syncd.errors import (
    AdapterError,
    AuthError,
    ConflictError,
    NetworkError,
    RateLimited,
    RemoteRejected,
)
from syncd.remote import stats
from syncd.remote.auth import Credentials, make_authenticator
from syncd.remote.limits import shared

if TYPE_CHECKING:
    import aiohttp

EXCERPT = 200  # characters of an error answer quoted in a message
AMBIGUOUS = "ambiguous"  # a NetworkError's code when the request may have been carried out


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """How to reach one remote (``[remotes.NAME]``, or an adapter's own keys)."""

    base_url: str = ""
    timeout: float = 30.0
    rate_limit: str | None = None  # "10/s"; None: no limit
    concurrency: int = 4
    attempts: int = 5
    max_delay: float = 60.0
    headers: Mapping[str, str] = field(default_factory=dict)
    #: an auth model of ``syncd.config.remotes`` (``[remotes.NAME.auth]``)
    auth: Any = field(default_factory=NoAuth)

    @classmethod
    def from_config(cls, remote: RemoteConfig) -> RemoteSettings:
        return cls(base_url=remote.base_url, timeout=remote.timeout,
                   rate_limit=remote.rate_limit, concurrency=remote.concurrency,
                   attempts=remote.retry.attempts, max_delay=remote.retry.max_delay,
                   headers=dict(remote.headers), auth=remote.auth)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise RemoteRejected(f"the answer is not JSON ({exc})", code="bad_answer") from None


class HttpClient:
    """Requests to one remote from one run's event loop; ``close()`` when done."""

    def __init__(self, name: str, settings: RemoteSettings,
                 initial_delay: float = 0.5, state_dir: Path | None = None) -> None:
        self.name, self.settings = name, settings
        self.limit = shared(name, settings.rate_limit)
        self.auth = make_authenticator(name, settings.auth, state_dir)
        self.initial_delay = initial_delay
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(max(1, settings.concurrency))

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None,
                      idempotency_key: str | None = None,
                      retry_ambiguous: bool = True, data: Any = None) -> Response:
        """Send with retries on network errors, 429 and 5xx; raise an ``AdapterError``.

        ``retry_ambiguous=False``: a request that may have reached the remote but got no
        answer (the connection dropped, a timeout) is not sent again; it raises a
        ``NetworkError`` with code ``ambiguous`` so the caller can ask the remote first.

        ``data`` instead of ``json_body``: what aiohttp sends as is (bytes, or a
        ``FormData`` for a multipart upload), or a function making it for each attempt
        (a ``FormData`` can be sent only once).
        """
        body = _Body(json_body, data)
        extra = dict(headers or {})
        if idempotency_key:
            extra["Idempotency-Key"] = idempotency_key

        def again(exc: BaseException) -> bool:
            return self._retryable(exc) and (
                retry_ambiguous or getattr(exc, "code", "") != AMBIGUOUS)

        try:  # the first attempt without tenacity's bookkeeping: most succeed
            return await self._authorized(method, path, body, params, extra)
        except Exception as exc:
            if self.settings.attempts <= 1 or not again(exc):
                raise
            first = exc
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.attempts - 1), reraise=True,
            retry=retry_if_exception(again), wait=self._wait_after(first),
            before_sleep=lambda _: stats.retry(self.name))
        stats.retry(self.name)
        await asyncio.sleep(self._delay(1, first))
        async for attempt in retrying:
            with attempt:
                return await self._authorized(method, path, body, params, extra)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _retryable(self, exc: BaseException) -> bool:
        """Network errors, 429 and 5xx, unless the remote asks for a longer wait than
        ``max_delay``: the run is then retried later, honouring it."""
        after = getattr(exc, "retry_after", None) or 0.0
        return isinstance(exc, NetworkError) and after <= self.settings.max_delay

    def _wait_after(self, first: BaseException) -> Any:
        """tenacity's wait for the attempts after the first (counted from 2)."""
        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self._delay(state.attempt_number + 1, exc or first)
        return wait

    def _delay(self, attempt: int, exc: BaseException) -> float:
        """Backoff after failed attempt ``attempt``: full jitter, never below the
        remote's ``Retry-After``."""
        ceiling = min(self.settings.max_delay, self.initial_delay * 2 ** (attempt - 1))
        backoff = random.uniform(0, ceiling)
        after = getattr(exc, "retry_after", None) or 0.0
        return float(max(backoff, after))  # jitter never shortens the remote's wait

    async def _authorized(self, method: str, path: str, body: _Body,
                          params: Mapping[str, Any] | None,
                          headers: Mapping[str, str]) -> Response:
        """One request with credentials; a 401 renews them (OAuth2) and is sent once more."""
        credentials = await self.auth.credentials(self.session)
        try:
            return await self._once(method, path, body, params, headers, credentials)
        except AuthError as exc:
            if exc.code != "http_401" or not await self.auth.rejected(credentials):
                raise
        credentials = await self.auth.credentials(self.session)
        return await self._once(method, path, body, params, headers, credentials)

    async def _once(self, method: str, path: str, body: _Body,
                    params: Mapping[str, Any] | None, headers: Mapping[str, str],
                    credentials: Credentials) -> Response:
        import aiohttp  # here, not at import: `syncd sync` of a CSV file never needs it

        if credentials.params:
            params = {**(params or {}), **credentials.params}
        if credentials.headers:
            headers = {**headers, **credentials.headers}
        async with self._slots:
            mark, waited = await self.limit.acquire()
            stats.waited(self.name, waited)
            try:
                async with self.session.request(method, self.url(path), json=body.json,
                                                data=body.made(), params=params,
                                                headers=headers) as answer:
                    self.limit.answered(mark)  # it reached the remote by now
                    mark = None
                    data = await answer.read()
                    response = Response(answer.status, dict(answer.headers), data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                stats.request(self.name, "error")
                # never connected: nothing was sent; anything later may have arrived
                sent = not isinstance(exc, aiohttp.ClientConnectorError)
                message = f"{self.name}: {method} {path}: {type(exc).__name__}: {exc}"
                raise NetworkError(credentials.scrub(message.rstrip(": ")),
                                   code=AMBIGUOUS if sent else None) from None
            finally:
                self.limit.answered(mark)  # failed: it may have reached the remote
        stats.request(self.name, response.status)
        self.limit.note(response.headers)
        if response.status == 429:
            self.limit.pause(retry_after(response) or 0.0)  # every run waits, not just this
        raise_for_status(self.name, method, path, response, credentials)
        return response

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")) or not self.settings.base_url:
            return path
        return self.settings.base_url.rstrip("/") + "/" + path.lstrip("/")

    def shown_url(self, path: str) -> str:
        """The URL of ``path`` as a dry run shows it: every credential in it as ``***``
        (a password in the base URL, an api_key sent as a query parameter)."""
        from urllib.parse import urlsplit

        from syncd.store.database import redact_url

        url = redact_url(self.url(path))
        auth = self.settings.auth
        if getattr(auth, "type", "") == "api_key" and getattr(auth, "in_", "") == "query":
            url += ("&" if urlsplit(url).query else "?") + f"{auth.name}=***"
        return url

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout,
                                                  headers=dict(self.settings.headers))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True, slots=True)
class _Body:
    """A request's body: JSON, or data (or a function making it afresh per attempt)."""

    json: Any = None
    data: Any = None

    def made(self) -> Any:
        return self.data() if callable(self.data) else self.data


def raise_for_status(name: str, method: str, path: str, response: Response,
                     credentials: Credentials | None = None) -> None:
    """Turn an error answer into the adapter error a run records."""
    status = response.status
    if status < 400:
        return
    where = f"{name}: {method} {path} answered {status}"
    excerpt = response.body[:EXCERPT].decode("utf-8", "replace").strip()
    if credentials is not None:
        where, excerpt = credentials.scrub(where), credentials.scrub(excerpt)
    message = f"{where}: {excerpt!r}" if excerpt else where
    error: AdapterError
    if status in (401, 403):
        error = AuthError(where, code=f"http_{status}")  # no body: it may echo credentials
    elif status == 409:
        error = ConflictError(message, code="http_409")
    elif status == 429:
        error = RateLimited(message, code="http_429", retry_after=retry_after(response))
    elif status == 408 or status >= 500:
        error = NetworkError(message, code=f"http_{status}", retry_after=retry_after(response))
    else:
        error = RemoteRejected(message, code=f"http_{status}")
    raise error


def retry_after(response: Response) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), capped at an hour."""
    value = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 3600.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max((moment - datetime.now(UTC)).total_seconds(), 0.0), 3600.0)


class HttpFactory:
    """Makes clients by remote name: ``[remotes.NAME]`` settings, overridden per call.

    Overrides are ``RemoteSettings`` fields (``None`` leaves a setting as configured);
    ``headers`` add to the remote's; ``auth`` is an auth model or a mapping in the
    ``[remotes.NAME.auth]`` shape whose secrets may be given as values (ad-hoc runs).
    """

    def __init__(self, remotes: Mapping[str, RemoteSettings] | None = None,
                 state_dir: Path | None = None) -> None:
        self.remotes = dict(remotes or {})
        self.state_dir = state_dir

    @classmethod
    def from_config(cls, remotes: Mapping[str, RemoteConfig],
                    state_dir: Path | None = None) -> HttpFactory:
        return cls({name: RemoteSettings.from_config(remote)
                    for name, remote in remotes.items()}, state_dir)

    def __call__(self, remote: str, **settings: Any) -> HttpClient:
        base = self.remotes.get(remote, RemoteSettings())
        fields = {k: v for k, v in settings.items() if v is not None}
        if "auth" in fields:
            try:
                fields["auth"] = parse_auth(fields["auth"], inline=True)
            except ValueError as exc:
                raise AuthError(f"{remote}: {exc}", code="bad_auth") from None
        if "headers" in fields:
            fields["headers"] = {**base.headers, **fields["headers"]}
        merged = dataclasses.replace(base, **fields) if fields else base
        return HttpClient(remote, merged, state_dir=self.state_dir)
