"""OAuth2 client credentials and refresh tokens (filled in by the next commit)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from syncd.config.remotes import OAuth2Auth
from syncd.errors import AuthError
from syncd.remote.auth import Authenticator, Credentials

if TYPE_CHECKING:
    import aiohttp


class OAuth2(Authenticator):
    def __init__(self, remote: str, auth: OAuth2Auth, state_dir: Path | None) -> None:
        self.remote, self.auth, self.state_dir = remote, auth, state_dir

    async def credentials(self, session: aiohttp.ClientSession) -> Credentials:
        raise AuthError(f"{self.remote}: oauth2 is not implemented yet")
