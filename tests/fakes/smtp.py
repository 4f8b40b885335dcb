"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps the messages it is sent.

It asks for a login (plain text allowed, as a local relay might) and accepts only
``USER`` / the password it was made with; made without a password it takes mail from
anyone. With a ``tls_context`` it offers STARTTLS and requires it (``self_signed``
makes a certificate for 127.0.0.1 to trust through ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from email import message_from_bytes
from email.message import Message
from pathlib import Path
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
        self.tls: list[bool] = []  # per message: did it come over TLS?
        self.failing = 0  # the next messages answered "451" (try again later)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.failing:
            self.failing -= 1
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.original_content))
        self.tls.append(session.ssl is not None)
        return "250 OK"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (PEM files in ``folder``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class SmtpServer:
    def __init__(self, password: str | None, *, port: int | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.password = password
        self.handler = _Handler()
        self.port = port or free_port()
        options: dict[str, Any] = {}
        if password is not None:
            options |= {"authenticator": self._auth, "auth_required": True,
                        "auth_require_tls": tls is not None}
        if tls is not None:
            options |= {"tls_context": tls, "require_starttls": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **options)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str,
              data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login == USER.encode()
              and self.password is not None and data.password == self.password.encode())
        return AuthResult(success=ok, handled=False)  # a refusal answers 535

    def fail_next(self, count: int) -> None:
        """The next ``count`` messages are refused for now (451), as a busy server does."""
        self.handler.failing = count

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
