"""What every contract suite shares: the adapter it covers and a context to open it with."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, get_args

import structlog

from syncd.adapters import ErrorType, ItemError, RunContext
from syncd.remote.http import HttpFactory

ERROR_TYPES = frozenset(get_args(ErrorType))


class Contract:
    """Base of the suites. ``adapter`` is the class under test (a subclass must set it)."""

    adapter: ClassVar[type[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a suite's own subclasses (the three contracts) name no adapter yet
        if cls.__module__.startswith("syncd.testing.contracts"):
            return
        if not isinstance(cls.__dict__.get("adapter", getattr(cls, "adapter", None)), type):
            raise TypeError(f"{cls.__qualname__}: set `adapter = <the class under test>`")


def context(tmp_path: Path, *, dry_run: bool = False, sql: Any = None,
            run_id: int = 1, http: HttpFactory | None = None) -> RunContext:
    """A run's context as the engine hands it, for driving an adapter directly; ``http``
    makes its clients (default: no ``[remotes.NAME]`` configured)."""
    return RunContext(run_id=run_id, job="contract", log=structlog.get_logger("syncd.contract"),
                      state_dir=tmp_path, dry_run=dry_run, sql=sql,
                      http=http if http is not None else HttpFactory())


def check_item_error(error: Any, where: str) -> None:
    """An ``ItemError`` of a known type, with a code and a message."""
    assert isinstance(error, ItemError), f"{where}: {error!r} is not a syncd.adapters.ItemError"
    assert error.type in ERROR_TYPES, (
        f"{where}: error type {error.type!r} is none of {sorted(ERROR_TYPES)}")
    assert error.code and isinstance(error.code, str), f"{where}: {error!r} has no code"
    assert error.message and isinstance(error.message, str), f"{where}: {error!r} has no message"


def _suites() -> Iterable[type[Contract]]:
    stack = list(Contract.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        yield cls


def contract_of(adapter: type) -> list[type[Contract]]:
    """The contract test classes defined so far (imported) that cover ``adapter``."""
    return [s for s in _suites() if s.__dict__.get("adapter") is adapter]


def adapters_without_contract(adapters: Iterable[type]) -> list[type]:
    """Those of ``adapters`` that no imported contract test class covers."""
    return [a for a in adapters if not contract_of(a)]
