"""Talking to a running daemon's control API (SPEC §5) with aiohttp's client.

One ``ApiClient`` per command: a session over TCP or, for ``listen = "unix:/path"``,
a unix socket. Each request gets its own connection (no keep-alive), so a daemon that
restarted between two requests is never met on a stale pooled connection. Answers are
syncd's JSON envelope; anything else, and every way of not getting an answer, becomes
one of these ``syncd.errors.UserError``s:

    ClientError              one line, a hint and the exit code to leave with
    ├── DaemonUnreachable    nothing usable answers on the address (exit 3)
    └── ApiFailure           the daemon answered with an error envelope
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from syncd import __version__
from syncd.cli.exits import EXIT_AUTH, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE
from syncd.config.secrets import Secret
from syncd.errors import UserError

TIMEOUT_S = 30.0
_STATUS_EXIT = {400: EXIT_USAGE, 413: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH,
                503: EXIT_UNREACHABLE}
# a request: connected and answered in full within TIMEOUT_S
_CALL = aiohttp.ClientTimeout(total=TIMEOUT_S)
# an event stream: connected within TIMEOUT_S (its headers too, see ``events``), then
# read for as long as the run goes: a quiet run is fine
_STREAM = aiohttp.ClientTimeout(total=None, sock_connect=TIMEOUT_S, sock_read=None)


class ClientError(UserError):
    """A failure of a client command, printed as one line; ``exit_code`` says which."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, hint: str = "") -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class DaemonUnreachable(ClientError):
    """Nothing usable answers on the address; ``closed``: it hung up on a request."""

    def __init__(self, message: str, hint: str = "", closed: bool = False) -> None:
        super().__init__(message, EXIT_UNREACHABLE, hint)
        self.closed = closed


class ApiFailure(ClientError):
    """The daemon answered ``{"success": false, "error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        hint = ""
        if status == 401:
            hint = ("the token is read from the file named by [api] token_file in the config "
                    "(--config or $SYNCD_CONFIG)")
        super().__init__(f"{message} ({code})", _STATUS_EXIT.get(status, EXIT_FAILED), hint)


@dataclass(frozen=True, slots=True)
class Address:
    """A unix socket ``path``, or a TCP ``host`` and ``port``; ``label`` is for messages."""

    label: str
    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, listen: str | list[str]) -> Address:
        """``[api] listen``: ``host:port`` or ``unix:/path``, or a list (a socket preferred)."""
        choices = [listen] if isinstance(listen, str) else list(listen)
        if not choices:
            raise ClientError("[api] listen is empty: no address to reach the daemon on",
                              EXIT_USAGE)
        chosen = next((c for c in choices if c.startswith("unix:")), choices[0])
        if chosen.startswith("unix:"):
            return cls(chosen, path=chosen.removeprefix("unix:"))
        host, _, port = chosen.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ClientError(f"[api] listen = {chosen!r}: expected host:port or unix:/path",
                              EXIT_USAGE)
        # a daemon listening on every interface is reached on loopback
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(
            host, host)
        return cls(chosen, host=host, port=int(port))

    @property
    def base_url(self) -> str:
        """The URL a request path is appended to; over a socket, the Host is localhost."""
        if self.path:
            return "http://localhost"
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else (
            f"http://{self.host}:{self.port}")


def read_token(source: str | Secret) -> str:
    """The bearer token from ``[api] token_file`` (a path or a secret); "" for no auth."""
    if not source:
        return ""
    try:
        token = Path(source).read_text().strip() if isinstance(source, str) else source.reveal()
    except OSError as exc:
        raise ClientError(f"cannot read the API token from {source}: {exc.strerror}",
                          EXIT_AUTH, "run as a user who may read [api] token_file") from None
    except LookupError as exc:
        raise ClientError(f"cannot read the API token: {exc}", EXIT_AUTH) from None
    if not token:
        raise ClientError(f"the API token in {source} is empty", EXIT_AUTH)
    return token


class ApiClient:
    """Requests to the control API, in an ``async with`` that owns the session."""

    def __init__(self, address: Address, token: str = "") -> None:
        self.address = address
        headers = {"User-Agent": f"syncd/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connector: aiohttp.BaseConnector = (
            aiohttp.UnixConnector(address.path, force_close=True) if address.path
            else aiohttp.TCPConnector(force_close=True))
        self.session = aiohttp.ClientSession(address.base_url, connector=connector,
                                             headers=headers)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   params: dict[str, Any] | None = None) -> Any:
        """The ``data`` of a successful answer; an ``ApiFailure`` for an error envelope."""
        try:
            async with self.session.request(
                    method, path, json=body, params=params, timeout=_CALL,
                    headers={"Accept": "application/json"}) as response:
                raw = await response.read()
        except (OSError, aiohttp.ClientError) as exc:
            raise self.unreachable(exc) from None
        return _data(response, raw)

    async def run(self, run_id: int) -> dict[str, Any]:
        """One run as ``GET /v1/sync/{id}`` shows it."""
        run: dict[str, Any] = await self.call("GET", f"/v1/sync/{run_id}")
        return run

    @asynccontextmanager
    async def events(self, run_id: int) -> AsyncIterator[aiohttp.StreamReader]:
        """Subscribe to the events of ``run_id``: open when entered, its body to read."""
        try:
            async with asyncio.timeout(TIMEOUT_S):  # the stream's headers, not its events
                response = await self.session.get(
                    "/v1/events", params={"run": run_id}, timeout=_STREAM,
                    headers={"Accept": "text/event-stream"})
        except (OSError, aiohttp.ClientError) as exc:
            raise self.unreachable(exc) from None
        async with response:
            if response.status != 200:
                try:
                    raw = await response.read()
                except (OSError, aiohttp.ClientError) as exc:
                    raise self.unreachable(exc) from None
                _data(response, raw)  # raises the daemon's error
                raise ApiFailure(response.status, "not_a_stream", "no event stream was opened")
            yield response.content

    def unreachable(self, exc: BaseException) -> DaemonUnreachable:
        """Say in one line why the daemon could not be talked to."""
        where = self.address.label
        if isinstance(exc, aiohttp.ClientConnectorError):  # aiohttp's wrapper of the OSError
            exc = exc.os_error
        elif isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET,
                                                                       errno.EPIPE):
            exc = ConnectionResetError(exc.errno, exc.strerror)
        if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
            return DaemonUnreachable(f"the daemon is not running (no answer on {where})",
                                     "start it with: syncd run")
        if isinstance(exc, PermissionError):
            return DaemonUnreachable(f"not allowed to connect to the daemon on {where}",
                                     "its socket is 0660: run as root or as a member of "
                                     "the socket's group")
        if isinstance(exc, TimeoutError):
            return DaemonUnreachable(f"the daemon did not answer on {where} within "
                                     f"{TIMEOUT_S:.0f}s")
        if isinstance(exc, ConnectionResetError | aiohttp.ServerDisconnectedError
                      | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
            return DaemonUnreachable(f"the daemon on {where} closed the connection without "
                                     "an answer", "check [api] listen and the daemon's log",
                                     closed=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DaemonUnreachable(f"cannot reach the daemon on {where}: {reason}")


def _data(response: aiohttp.ClientResponse, raw: bytes) -> Any:
    """The ``data`` of syncd's envelope; an ``ApiFailure`` for an error or no envelope."""
    try:
        envelope = json.loads(raw)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or "success" not in envelope:
        raise ApiFailure(response.status, "not_syncd",
                         f"the daemon answered HTTP {response.status} {response.reason} "
                         "without syncd's JSON envelope")
    if response.status >= 400 or not envelope["success"]:
        error = envelope.get("error") or {}
        raise ApiFailure(response.status, str(error.get("code", response.status)),
                         str(error.get("message", response.reason)))
    return envelope.get("data")
