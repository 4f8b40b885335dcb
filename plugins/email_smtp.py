"""The email target's SMTP side (aiosmtplib): the server URL, one connection per run,
and SMTP failures in syncd's terms, never with a secret in them.

``smtp://host:587`` upgrades with STARTTLS (required, certificate verified against the
system's CAs or ``SSL_CERT_FILE``), ``smtps://host`` (465) speaks TLS from the start,
``smtp://127.0.0.1:25`` is plain; ``starttls = true`` requires STARTTLS on another port.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from syncd.adapters import RunContext, Secret
from syncd.errors import AdapterError, AuthError, NetworkError, RemoteRejected

if TYPE_CHECKING:  # aiosmtplib loads with the first message, not with the plugin (start-up)
    import aiosmtplib

PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class Server:
    scheme: str
    host: str
    port: int
    use_tls: bool
    start_tls: bool

    @classmethod
    def parse(cls, url: str, starttls: bool | None) -> Server:
        """A ``ValueError`` says what is wrong with ``url`` (for the config's ``smtp``)."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in PORTS:
            raise ValueError(f"expected smtp://host:port or smtps://host:port, not "
                             f"{scheme + '://' if scheme else 'no scheme'}")
        if parts.username or parts.password:
            raise ValueError("put no login in the URL: use username and password (a secret)")
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError("expected smtp://host:port, with nothing after the port")
        try:
            port = parts.port or PORTS[scheme]
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        if scheme == "smtps":
            return cls(scheme, parts.hostname, port, True, False)
        return cls(scheme, parts.hostname, port, False,
                   port == PORTS["smtp"] if starttls is None else starttls)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class Mailer:
    """One SMTP connection for a run, opened on the first message."""

    def __init__(self, server: Server, timeout: float, ctx: RunContext,
                 username: str | Secret | None, password: Secret | None) -> None:
        self.server, self.timeout, self.ctx = server, timeout, ctx
        self.username, self.password = username, password
        self._smtp: aiosmtplib.SMTP | None = None
        self._down: AdapterError | None = None  # the server could not be reached this run
        self._secrets: list[str] = []

    async def probe(self) -> str:
        await self._connect()
        how = ("TLS" if self.server.use_tls else "STARTTLS" if self.server.start_tls
               else "plain")
        return f"{self.server}: connected ({how}" + (", logged in)" if self.username else ")")

    async def send(self, message: EmailMessage) -> str:
        """Send ``message``; its ``Message-ID`` once the server accepted it."""
        import aiosmtplib

        smtp = await self._connect()
        try:
            await smtp.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(r.recipient for r in exc.recipients)
            raise RemoteRejected(f"{self.server} refused the recipients {refused}",
                                 code="recipients_refused") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise self._answer(exc, "refused the message") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self.close()  # a broken connection: the next message connects again
            raise NetworkError(f"{self.server}: sending failed: {self._text(exc)}",
                               code="smtp_failed") from None
        return str(message["Message-ID"])

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            import aiosmtplib

            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        import aiosmtplib

        if self._down is not None:  # not tried again for every record of this run
            raise self._down
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        reveal = self.ctx.secrets.reveal
        username = reveal(self.username, "username") if self.username is not None else None
        password = reveal(self.password, "password") if self.password is not None else None
        if self.username is not None and password is None:
            raise AuthError("username is set, password is not")
        self._secrets = [s for s in (password,) if s]
        smtp = aiosmtplib.SMTP(hostname=self.server.host, port=self.server.port,
                               use_tls=self.server.use_tls, start_tls=self.server.start_tls,
                               timeout=self.timeout, username=username, password=password)
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            self._down = AuthError(f"{self.server} refused the login (SMTP {exc.code})")
        except aiosmtplib.SMTPResponseException as exc:
            self._down = self._answer(exc, "refused the connection")
        except aiosmtplib.SMTPException as exc:  # connect, timeout, STARTTLS not offered
            self._down = NetworkError(f"cannot reach {self.server}: {self._text(exc)}",
                                      code="smtp_unreachable")
        except ssl.SSLError as exc:
            self._down = NetworkError(f"{self.server}: TLS failed: {self._text(exc)}",
                                      code="tls_failed")
        except OSError as exc:
            self._down = NetworkError(f"cannot reach {self.server}: {self._text(exc)}",
                                      code="smtp_unreachable")
        if self._down is not None:
            smtp.close()
            raise self._down
        self._smtp = smtp
        return smtp

    def _answer(self, exc: aiosmtplib.SMTPResponseException, what: str) -> AdapterError:
        """5xx is the server's final word; 4xx (busy, greylisted) is worth another try."""
        text = f"{self.server} {what}: SMTP {exc.code} {self._text(exc.message)}"
        if exc.code >= 500:
            return RemoteRejected(text, code=f"smtp_{exc.code}")
        return NetworkError(text, code=f"smtp_{exc.code}")

    def _text(self, exc: object) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
