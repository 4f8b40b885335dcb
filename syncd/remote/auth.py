"""Credentials added to every request to a remote, by ``[remotes.NAME.auth]`` type.

Secrets are read when a client first sends (so a missing secret is the run's
``AuthError``, naming where it looked, never a value) and every value read is
blanked in logs. ``Credentials.secrets`` lets the client scrub them from error
messages too: an error answer or a network error may echo a URL or a header.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.config.remotes import ApiKeyAuth, BasicAuth, BearerAuth, OAuth2Auth
from syncd.config.secrets import InlineSecret, Secret
from syncd.errors import AuthError

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one request carries: headers, query parameters and the secrets among them."""

    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


NONE = Credentials()


class Authenticator:
    """Adds credentials to requests; this base adds none (``none``, and ``form``, which
    the browser adapter handles itself)."""

    async def credentials(self, session: aiohttp.ClientSession) -> Credentials:
        return NONE

    async def rejected(self, used: Credentials) -> bool:
        """A 401 answered a request sent with ``used``: True to send it once more."""
        return False


class StaticAuth(Authenticator):
    """bearer, basic and api_key: the same credentials on every request."""

    def __init__(self, remote: str, auth: BearerAuth | BasicAuth | ApiKeyAuth) -> None:
        self.remote, self.auth = remote, auth
        self._made: Credentials | None = None

    async def credentials(self, session: aiohttp.ClientSession) -> Credentials:
        if self._made is None:
            self._made = self._make()
        return self._made

    def _make(self) -> Credentials:
        auth = self.auth
        if isinstance(auth, BearerAuth):
            token = reveal(self.remote, auth.token, "auth.token")
            return Credentials({"Authorization": f"Bearer {token}"}, secrets=(token,))
        if isinstance(auth, BasicAuth):
            user = reveal(self.remote, auth.username, "auth.username")
            password = reveal(self.remote, auth.password, "auth.password")
            pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return Credentials({"Authorization": f"Basic {pair}"}, secrets=(password, pair))
        value = reveal(self.remote, auth.value, "auth.value")
        if auth.in_ == "query":
            return Credentials(params={auth.name: value}, secrets=(value,))
        return Credentials({auth.name: value}, secrets=(value,))


def reveal(remote: str, secret: str | Secret | InlineSecret | None, what: str) -> str:
    """A secret's value; one that cannot be read is an ``AuthError`` saying where it looked."""
    if secret is None:
        raise AuthError(f"{remote}: {what} is not configured", code="no_credentials")
    if isinstance(secret, str):
        return secret
    try:
        return secret.reveal()
    except LookupError as exc:
        raise AuthError(f"{remote}: {what}: {exc}", code="no_credentials") from None


def make_authenticator(remote: str, auth: Any, state_dir: Path | None) -> Authenticator:
    """The authenticator for ``auth`` (an auth model of ``syncd.config.remotes``)."""
    if isinstance(auth, BearerAuth | BasicAuth | ApiKeyAuth):
        return StaticAuth(remote, auth)
    if isinstance(auth, OAuth2Auth):
        from syncd.remote.oauth2 import OAuth2

        return OAuth2(remote, auth, state_dir)
    return Authenticator()
