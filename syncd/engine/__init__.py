"""The engine: plans, executors and the run manager.

The names below are imported on first use, so that a module of the package (the
duplicate-key index, in a reader process) can be imported without the whole engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import lazy_names

if TYPE_CHECKING:
    from syncd.engine.engine import Engine, Request
    from syncd.engine.plan import JobPlan, resolve_jobs
    from syncd.engine.runs import Outcome, Progress

_HOMES = {"Engine": "engine", "Request": "engine", "JobPlan": "plan",
          "resolve_jobs": "plan", "Outcome": "runs", "Progress": "runs"}

__all__ = ["Engine", "JobPlan", "Outcome", "Progress", "Request", "resolve_jobs"]

__getattr__ = lazy_names(__name__, _HOMES, globals())
