"""The engine: plans, executors and the run manager."""

from syncd.engine.engine import Engine, Request
from syncd.engine.plan import JobPlan, resolve_jobs
from syncd.engine.runs import Outcome, Progress

__all__ = ["Engine", "JobPlan", "Outcome", "Progress", "Request", "resolve_jobs"]
