"""The errors syncd raises, and which of them a user can act on.

    SyncdError
    ├── UserError              a problem the user fixes; the CLI prints it in one line
    │   ├── ConfigError        a bad config file, key or value
    │   ├── PluginError        a plugin that cannot be loaded or misnames a hook
    │   └── JobError           a job that cannot run as defined (unknown job, bad mapping)
    ├── RunConflict            another run of the same job and source holds the lock
    │   └── ClaimLost          another daemon took over a run this one was executing
    ├── SourceError            a source that cannot be read at all
    │   └── RetryableError     a transient failure (network, busy database): try again later
    └── AdapterError           what an adapter raises about a record or its remote; each
        │                      carries its ``error_type`` and whether it is retryable
        ├── AuthError          refused credentials (auth; not retried)
        ├── ConflictError      the remote disagrees with the record (conflict; not retried)
        ├── RemoteRejected     the remote refused the record (target; not retried)
        └── NetworkError       no answer, a reset, a 5xx (network; retried)
            └── RateLimited    429 or a quota (rate_limit; retried after ``retry_after``)

Per-item problems are not exceptions: they are ``ItemError`` records that a run
stores and counts while the rest of the data syncs.
"""

from __future__ import annotations

from typing import Literal

#: the ``sync_errors.error_type`` values (SPEC §6)
ErrorType = Literal[
    "validation", "parsing", "network", "auth", "rate_limit", "conflict", "target", "system"
]


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class UserError(SyncdError):
    """An error the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(UserError):
    """A config file that cannot be used: names the file and the key path."""

    def __init__(self, path: object, key: str, message: str) -> None:
        self.path, self.key = path, key
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + message)


class PluginError(UserError):
    """A plugin that cannot be used."""


class JobError(UserError):
    """A job that cannot run as defined."""


class RunConflict(SyncdError):
    """Another run of the same job and source is in progress."""


class ClaimLost(RunConflict):
    """Another daemon took over a run after this one's lease lapsed: stop touching it."""


class SourceError(SyncdError):
    """A source that cannot be read at all (missing file, wrong format)."""

    code = "unreadable"


class RetryableError(SourceError):
    """A transient failure; ``retry_after`` (seconds) is honoured when set."""

    code = "transient"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdapterError(SyncdError):
    """A failure an adapter reports: raised for a whole run, or returned per record.

    ``error_type`` is the ``sync_errors.error_type`` it is stored as; ``retryable``
    says whether trying again later may succeed; ``code`` is a short machine name.
    """

    error_type: ErrorType = "target"
    retryable = False
    code = "error"

    def __init__(self, message: str, *, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class AuthError(AdapterError):
    error_type, code = "auth", "unauthorized"


class ConflictError(AdapterError):
    error_type, code = "conflict", "conflict"


class RemoteRejected(AdapterError):
    error_type, code = "target", "rejected"


class NetworkError(AdapterError):
    error_type: ErrorType = "network"  # not narrowed to "network": RateLimited differs
    code, retryable = "unreachable", True


class RateLimited(NetworkError):
    error_type, code = "rate_limit", "rate_limited"
