"""Secrets: values that live in a file, the environment or a systemd credential.

A secret is never written in the config itself; the config says where it is. Every
value revealed is remembered so the log redactor can blank it wherever it appears.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

_REVEALED: set[str] = set()


def revealed_values() -> frozenset[str]:
    """Every secret value read so far, for redaction."""
    return frozenset(_REVEALED)


def remember(value: str) -> None:
    """A secret that came another way (an ad-hoc run's inline token): redact it too."""
    if value:
        _REVEALED.add(value)


class Secret(BaseModel):
    """``{ file = "/path" }``, ``{ env = "NAME" }`` or ``{ credential = "NAME" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    env: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        given = [k for k in ("file", "env", "credential") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a secret is exactly one of { file = … }, { env = … }, "
                             "{ credential = … }")
        return self

    def reveal(self) -> str:
        """Read the value now (it may rotate); raises ``LookupError`` saying where it looked."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"environment variable {self.env} is not set")
        else:
            path = self.file if self.file is not None else _credential_path(self.credential)
            try:
                value = path.read_text().strip()
            except OSError as exc:
                raise LookupError(f"cannot read secret file {path}: {exc.strerror}") from None
        if value:
            _REVEALED.add(value)
        return value

    def __str__(self) -> str:
        return "<secret>"

    __repr__ = __str__


def _credential_path(name: str | None) -> Path:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise LookupError(f"credential {name!r}: $CREDENTIALS_DIRECTORY is not set "
                          "(LoadCredential= in the unit)")
    return Path(directory) / str(name)
