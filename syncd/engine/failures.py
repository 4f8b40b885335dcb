"""Why a run failed, in the user's terms, and whether trying again can help."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState
from tenacity.wait import wait_exponential_jitter

from syncd.adapters import ItemError
from syncd.engine.runs import Outcome
from syncd.errors import AdapterError, ErrorType, JobError, RetryableError, SourceError, UserError
from syncd.store.orm import pw

if TYPE_CHECKING:
    from syncd.store import Store


class SourceChanged(SourceError):
    """The source changed while the run read it: what was read is no whole version."""

    code = "source_changed"


DISK_FULL = ("disk is full", "no space left")


def is_disk_full(exc: BaseException) -> bool:
    return any(text in str(exc).lower() for text in DISK_FULL)


DRIVERS = ("sqlite3", "psycopg2", "psycopg", "pymysql", "MySQLdb")


def is_database_error(exc: BaseException) -> bool:
    """Peewee's errors, and a driver's own (a target may use the DB-API cursor directly)."""
    return isinstance(exc, pw.PeeweeException) or type(exc).__module__.split(".")[0] in DRIVERS


def retry_wait(initial: float, maximum: float) -> Callable[[RetryCallState], float]:
    """An attempt's backoff: exponential with jitter, never shorter than the
    ``retry_after`` the failure asked for (a remote's 429 or 503)."""
    exponential = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None) or 0.0
        return max(float(after), exponential(state))

    return wait


def is_transient(exc: BaseException) -> bool:
    """Errors worth trying again: the source says so, or the database is busy or gone."""
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, AdapterError):  # an adapter says so (network, rate limit)
        return exc.retryable
    if is_database_error(exc) and type(exc).__name__ in ("OperationalError", "InterfaceError"):
        text = str(exc).lower()
        return any(word in text for word in ("locked", "busy", "connection", "server", "timeout"))
    return False


def describe_failure(exc: Exception) -> ItemError:
    """The one error a failed run records, in the user's terms."""
    if isinstance(exc, AdapterError):  # its own type and retryability: auth, rate_limit…
        return ItemError(exc.error_type, exc.code, str(exc),
                         retryable=exc.retryable)
    if isinstance(exc, UserError | SourceError):
        hint = getattr(exc, "hint", "")  # a UserError's; a SourceError has none
        message = str(exc) + (f" ({hint})" if hint else "")
    elif is_disk_full(exc):
        message = (f"the disk holding the database is full ({str(exc).strip()}); once there "
                   "is space, a retry of this run continues from its checkpoint")
    elif is_database_error(exc):
        message = f"database error: {str(exc).strip()}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    error_type: ErrorType = "validation" if isinstance(exc, JobError) else (
        "parsing" if isinstance(exc, SourceError) and not is_transient(exc) else "system")
    if isinstance(exc, RetryableError):
        error_type = "network"
    code = getattr(exc, "code", None) or ("disk_full" if is_disk_full(exc)
                                          else type(exc).__name__)
    retryable = is_transient(exc) or is_disk_full(exc) or isinstance(exc, SourceChanged)
    if isinstance(exc, SourceChanged):
        error_type = "conflict"
    return ItemError(error_type, code, message, retryable=retryable)


def fail_run(store: Store, run_id: int, log: Any, exc: Exception) -> Outcome:
    """Record a run's failure and log it; a failure that cannot be recorded (the disk
    still full, the server gone) leaves the run unfinished, to resume later."""
    error = describe_failure(exc)
    message = error.message
    try:
        _record_failure(store, run_id, error)
    except Exception as store_exc:
        log.error("run failed, and its failure could not be recorded; it stays "
                  "unfinished and resumes on the next sync or daemon start",
                  error=message, store_error=str(store_exc).strip())
        return Outcome("failed", message)
    # an adapter's error is classified (auth, network, target…): no traceback, whose
    # locals could hold a request's credentials
    if isinstance(exc, UserError | SourceError | AdapterError) or is_database_error(exc) \
            or error.retryable:
        log.error("run failed", error=message)
    else:
        log.exception("run failed", error=message)
    return Outcome("failed", message)


def _record_failure(store: Store, run_id: int, error: ItemError) -> None:
    """The failure and its error, stored; on a full disk, in the room kept for it."""
    for attempt in range(2):
        try:
            with store.atomic():
                store.add_errors(run_id, [error])
                store.finish(run_id, "failed", error.message)
            return
        except Exception as exc:
            if attempt or not is_disk_full(exc) or not store.reserve.release():
                raise
