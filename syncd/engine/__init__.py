"""The engine: plans, executors and the run manager."""

from syncd.engine.engine import Engine, Request
from syncd.engine.executor import Outcome, Progress
from syncd.engine.plan import JobPlan, resolve_jobs

__all__ = ["Engine", "JobPlan", "Outcome", "Progress", "Request", "resolve_jobs"]
