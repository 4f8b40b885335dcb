"""A TCP proxy that can be cut: a database "gone" for one client, the server left alone.

The PostgreSQL server on 127.0.0.1:5432 is shared with other tests running at the same
time, so it is never stopped or restarted. Instead the process under test reaches it
through this proxy, and ``cut()`` makes the server vanish for that process alone: every
connection through the proxy is reset and new ones are refused (nothing listens on the
port) until ``restore()``. An asyncio loop in a thread of the test process does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class CuttableProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``cut()`` and ``restore()`` the way."""

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted so far: shows the client did come back
        self.port = _free_port()

    def __enter__(self) -> CuttableProxy:
        self.thread.start()
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def cut(self) -> int:
        """Stop listening and reset every open connection; returns how many were open."""
        return self._call(self._cut())

    def restore(self) -> None:
        """Listen on the same port again."""
        self._call(self._listen())

    async def _listen(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                     reuse_address=True)

    async def _cut(self) -> int:
        if self.server is not None:
            self.server.close()
            self.server = None
        open_now = len(self.writers)
        for writer in list(self.writers):
            _reset(writer)
        self.writers.clear()
        return open_now // 2  # two sockets (client side, server side) per connection

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client_w)
            return
        self.connections += 1
        self.writers |= {client_w, server_w}
        await asyncio.gather(self._pump(client_r, server_w), self._pump(server_r, client_w))
        self.writers -= {client_w, server_w}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until EOF or a reset; then close the other side too."""
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a dead host or a dropped route would look to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
