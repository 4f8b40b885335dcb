"""Serving the API on TCP and unix sockets, as ``[api] listen`` says."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from syncd.errors import UserError

SHUTDOWN_TIMEOUT_S = 5.0


def addresses(listen: str | list[str]) -> list[str]:
    return [listen] if isinstance(listen, str) else list(listen)


async def serve(app: web.Application, listen: str | list[str]) -> web.AppRunner:
    """Start listening on every address; a unix socket is made mode 0660."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                           handle_signals=False)
    await runner.setup()
    for address in addresses(listen):
        if address.startswith("unix:"):
            path = Path(address.removeprefix("unix:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_socket():
                path.unlink()  # left by a process that died; the flock guards real conflicts
            site: web.BaseSite = web.UnixSite(runner, str(path))
            await site.start()
            os.chmod(path, 0o660)
        else:
            host, _, port = address.rpartition(":")
            try:
                site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
                await site.start()
            except (ValueError, OSError) as exc:
                await runner.cleanup()
                raise UserError(f"cannot listen on {address!r}: {exc}",
                                hint="set [api].listen to host:port or unix:/path") from None
    return runner
