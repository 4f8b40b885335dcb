"""Delivering one notification to its channels, retried with backoff.

Runs on the notifier's own event loop (a thread of its own), so neither the daemon's
loop nor the worker thread of the run hook waits for a slow or absent receiver. Each
channel's outcome is counted once ("sent" or "failed") and logged without the URL's
path or any secret.
"""

from __future__ import annotations

import asyncio
import json
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from syncd.adapters import NotifyContext, Secret

from .notify import Message

TIMEOUT_S = 15.0
#: first and longest backoff between tries (seconds); tests shorten them
BACKOFF = (0.5, 30.0)


class Transient(Exception):
    """Worth another try: the receiver is away, busy or erring on its side."""


def reveal(value: str | Secret | None) -> str | None:
    return value.reveal() if isinstance(value, Secret) else value


def scrub(text: str, secrets: list[str]) -> str:
    """No secret a channel uses may travel in a message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def deliver(message: Message, notify: NotifyContext) -> None:
    """Send ``message`` to every configured channel; never raises."""
    settings = notify.settings
    jobs = []
    if settings.webhook is not None:
        jobs.append(_channel("webhook", _post, message, notify))
    if settings.email is not None:
        jobs.append(_channel("email", _mail, message, notify))
    await asyncio.gather(*jobs)


async def _channel(name: str, send: Any, message: Message, notify: NotifyContext) -> None:
    log = notify.log.bind(channel=name, subject=message.subject)
    first, longest = BACKOFF
    try:
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(notify.settings.attempts),
                wait=wait_exponential(multiplier=first, max=longest) + wait_random(0, first),
                retry=retry_if_exception_type((Transient, aiohttp.ClientError, OSError,
                                               TimeoutError, aiosmtplib.SMTPException)),
                reraise=True):
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    log.info("notification retried", attempt=number)
                await send(message, notify)
    except Exception as exc:
        log.error("notification could not be delivered", error=_describe(exc))
        notify.count(name, "failed")
        return
    log.info("notification sent")
    notify.count(name, "sent")


def _describe(exc: Exception) -> str:
    """The error without the URL (a webhook URL may hold a token in its path)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _post(message: Message, notify: NotifyContext) -> None:
    url = reveal(notify.settings.webhook) or ""
    body = scrub(json.dumps(message.document, default=str), [url])
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            url, data=body, headers={"Content-Type": "application/json",
                                     "User-Agent": "syncd-notify"}) as response:
        if response.status >= 500 or response.status == 429:
            raise Transient(f"HTTP {response.status} from {urlsplit(url).hostname}")
        response.raise_for_status()  # any other 4xx: no point in trying again


async def _mail(message: Message, notify: NotifyContext) -> None:
    email = notify.settings.email
    assert email is not None
    username, password = reveal(email.username), reveal(email.password)
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = email.from_
    mail["To"] = ", ".join(email.to)
    mail.set_content(scrub(message.text, [password or ""]))
    await aiosmtplib.send(mail, hostname=email.host, port=email.port, username=username,
                          password=password, start_tls=email.starttls and email.port != 465,
                          use_tls=email.port == 465, timeout=email.timeout_s)
