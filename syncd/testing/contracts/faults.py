"""Faults injected around any record target, without knowing its remote.

``instrument(cls, faults)`` subclasses the target under test so that every ``apply``
and ``find`` is counted and, on request, an answer is lost (the change was carried
out, then a network error) or the process "dies" (``Killed``, which nothing in the
engine catches) right after the remote acted and before the id map hears of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.adapters import AsyncRecordTarget, Change, Result
from syncd.errors import NetworkError


class Killed(BaseException):
    """The process died here: no handler runs, nothing more is committed."""


@dataclass
class Faults:
    applied: list[tuple[str, str]] = field(default_factory=list)  # (kind, key)
    found: list[str] = field(default_factory=list)
    creates: int = 0
    #: the numbers (1-based) of the creates whose answer is lost, or after which we die
    lose_answer: set[int] = field(default_factory=set)
    kill_after: set[int] = field(default_factory=set)

    def after(self, change: Change) -> None:
        self.applied.append((change.kind, change.key))
        if change.kind != "create":
            return
        self.creates += 1
        if self.creates in self.kill_after:
            raise Killed(f"killed after create {self.creates} ({change.key})")
        if self.creates in self.lose_answer:
            raise NetworkError("the answer was lost (injected by the contract test)",
                               code="answer_lost")


def instrument(cls: type[Any], faults: Faults) -> type[Any]:
    """A subclass of the target ``cls`` that reports to and obeys ``faults``."""
    if issubclass(cls, AsyncRecordTarget):
        async def apply(self: Any, change: Change) -> Result:
            result = await cls.apply(self, change)
            faults.after(change)
            return result

        async def find(self: Any, change: Change) -> str | None:
            faults.found.append(change.key)
            return await cls.find(self, change)
    else:
        def apply(self: Any, change: Change) -> Result:  # type: ignore[misc]
            result = cls.apply(self, change)
            faults.after(change)
            return result

        def find(self: Any, change: Change) -> str | None:  # type: ignore[misc]
            faults.found.append(change.key)
            return cls.find(self, change)
    return type(cls.__name__, (cls,), {"apply": apply, "find": find,
                                       "__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})
