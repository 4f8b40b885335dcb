"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps the messages it is sent.

It asks for a login (plain text allowed, as a local relay might) and accepts only
``USER`` / the password it was made with.
"""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "syncd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"


class SmtpServer:
    def __init__(self, password: str) -> None:
        self.password = password
        self.handler = _Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     authenticator=self._auth, auth_required=True,
                                     auth_require_tls=False)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str,
              data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login == USER.encode()
              and data.password == self.password.encode())
        return AuthResult(success=ok)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
