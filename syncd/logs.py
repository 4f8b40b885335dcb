"""Structured logs: JSON under systemd or in a pipe, readable on a terminal, never a secret."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict

from syncd.config.secrets import revealed_values

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api_?key", re.I)
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)([^@\s]+)(@)")


def redact(_: Any, __: str, event: EventDict) -> EventDict:
    """Blank secret-looking keys, passwords in URLs and every secret value read so far."""
    secrets = revealed_values()
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str):
            value = _URL_PASSWORD.sub(r"\1***\3", value)
            for secret in secrets:
                value = value.replace(secret, "***")
            event[key] = value
    return event


def wants_json(log_format: str, stream: Any = sys.stderr) -> bool:
    """JSON unless asked for console, or ``auto`` on a terminal outside systemd."""
    if log_format != "auto":
        return log_format == "json"
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    return under_systemd or not stream.isatty()


def _traceback() -> Any:
    """Tracebacks without local variables: they hold tokens and passwords (request
    headers, token forms), which the redactor never sees."""
    try:
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    except ImportError:  # rich is optional
        return structlog.dev.plain_traceback


def configure(log_format: str = "auto", level: int = logging.INFO) -> None:
    """Set up structlog for the process (called once by the CLI)."""
    as_json = wants_json(log_format)
    renderer: Any = (structlog.processors.JSONRenderer() if as_json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(),
                                                        exception_formatter=_traceback()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )

