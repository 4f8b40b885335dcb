"""Sealed secrets: an inline secret (an ad-hoc run's token) kept encrypted on the run.

A run must be able to resume after a restart, so the secret it was given has to be
stored; it is stored only as ``{"sealed": "<Fernet token>"}``, encrypted with a key
that never leaves ``state_dir/sealed.key`` (created 0600 on first use). Unsealed
values are handed to the log redactor, so they never reach a log line either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from syncd.config.secrets import remember

KEY_FILE = "sealed.key"
MARK = "sealed"
MASK = "***"


class SealedError(Exception):
    """A sealed value that cannot be opened (another key, a damaged value)."""


class Sealer:
    """Seals and opens secrets with the key of one ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / KEY_FILE
        self._fernet: Fernet | None = None

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(self._key())
        return self._fernet

    def _key(self) -> bytes:
        try:
            return self.path.read_bytes().strip()
        except FileNotFoundError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return self.path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key

    def seal(self, value: str) -> dict[str, str]:
        remember(value)
        return {MARK: self.fernet.encrypt(value.encode("utf-8")).decode("ascii")}

    def seal_keys(self, mapping: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
        """``mapping`` with the string values of ``keys`` sealed."""
        wanted = set(keys)
        return {k: self.seal(v) if k in wanted and isinstance(v, str) else v
                for k, v in mapping.items()}

    def open(self, value: Any) -> Any:
        """``value`` with every ``{"sealed": …}`` inside it replaced by its plain text."""
        if is_sealed(value):
            try:
                plain = self.fernet.decrypt(value[MARK].encode("ascii")).decode("utf-8")
            except (InvalidToken, ValueError):
                raise SealedError(f"a sealed secret cannot be opened with {self.path} "
                                  "(another state_dir's key, or a damaged value)") from None
            remember(plain)
            return plain
        if isinstance(value, dict):
            return {k: self.open(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.open(v) for v in value]
        return value


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {MARK} and isinstance(value[MARK], str)


def masked(value: Any, keys: Iterable[str]) -> Any:
    """``value`` (a mapping) as an answer shows it: the values of ``keys`` as ``***``."""
    wanted = set(keys)
    if not isinstance(value, dict):
        return value
    return {k: MASK if k in wanted or is_sealed(v) else v for k, v in value.items()}
