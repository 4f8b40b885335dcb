"""A job resolved against the registry: adapters chosen and their options validated."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from syncd.adapters import AsyncSource, Source, Target, TargetSchema
from syncd.config.loader import check_remote, describe
from syncd.config.schema import Config, JobConfig
from syncd.engine.pair import PairLink, link_pairs
from syncd.engine.recordkey import with_record_key
from syncd.errors import ConfigError, JobError, UserError
from syncd.plugins import Registry


@dataclass(frozen=True, slots=True)
class JobPlan:
    """Everything needed to start runs of one job."""

    name: str
    config: JobConfig
    source_cls: type[Source | AsyncSource]
    source_options: BaseModel
    target_cls: type[Target]
    target_options: BaseModel
    pair: PairLink | None = None  # one side of a bidirectional pair

    @property
    def fields(self) -> tuple[str, ...]:
        """Source fields to read, in mapping order."""
        return tuple(self.config.mapping.values())

    @property
    def columns(self) -> tuple[str, ...]:
        """Target fields, in the same order as ``fields``."""
        return tuple(self.config.mapping)

    def make_source(self, identifier: str | None = None) -> Source | AsyncSource:
        """The job's source; a mapping of ``RECORD_FIELD`` gets its whole-record digest."""
        return with_record_key(self.source_cls(self.source_options, identifier), self.fields)

    def make_target(self) -> Target:
        return self.target_cls(self.target_options)

    def schema(self, source: Source | AsyncSource) -> TargetSchema:
        target_key = tuple(getattr(self.target_options, "key", ()) or ()) or (self.columns[0],)
        return TargetSchema(job=self.name, columns=self.columns, key=target_key,
                            constants=dict(self.config.constants),
                            source_type=self.source_cls.name, source_identifier=source.identifier,
                            scope=source.scope)


def resolve_job(name: str, job: JobConfig, registry: Registry, path: Path | str,
                sections: Mapping[str, Any] | None = None) -> JobPlan:
    """Check a job's adapters and options; errors name the key path in the config file.

    Options are validated with a context (pydantic's ``info.context``): ``job``,
    ``fields`` (the target fields the job maps, constants included: what a target's
    templates may name) and ``sections``, the global sections an adapter reads its
    defaults from (``browser``: ``[browser]``)."""
    prefix = ("jobs", name)
    try:
        source_cls = registry.source(job.source.type)
    except UserError as exc:
        raise ConfigError(path, "jobs." + name + ".source.type", f"{exc} ({exc.hint})") from None
    try:
        target_cls = registry.target(job.target.type)
    except UserError as exc:
        raise ConfigError(path, "jobs." + name + ".target.type", f"{exc} ({exc.hint})") from None
    context = {"job": name, "fields": (*job.mapping, *job.constants),
               "sections": dict(sections or {})}
    source_options = _options(source_cls.Options, job.source.options, path,
                              (*prefix, "source"), context)
    target_options = _options(target_cls.Options, job.target.options, path,
                              (*prefix, "target"), context)
    if not job.mapping:
        raise ConfigError(path, f"jobs.{name}.mapping",
                          "no fields mapped; add `target_field = \"source_field\"` lines")
    key = tuple(getattr(target_options, "key", ()) or ())
    unknown = [k for k in key if k not in job.mapping and k not in job.constants]
    if unknown:
        raise ConfigError(path, f"jobs.{name}.target.key",
                          f"{', '.join(unknown)} not in jobs.{name}.mapping or constants")
    return JobPlan(name, job, source_cls, source_options, target_cls, target_options)


def resolve_jobs(config: Config, registry: Registry, path: Path | str) -> dict[str, JobPlan]:
    sections = {"browser": config.browser.model_dump()}
    plans = {name: resolve_job(name, job, registry, path, sections)
             for name, job in config.jobs.items()}
    for name, plan in plans.items():
        for side, options in (("source", plan.source_options), ("target", plan.target_options)):
            check_remote(config, f"jobs.{name}.{side}.remote", getattr(options, "remote", None),
                         path)
    return link_pairs(plans, path)


def _options(model: type[BaseModel], raw: dict[str, Any], path: Path | str,
             prefix: tuple[str, ...], context: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise describe(exc, path, model, prefix) from None


def plan_named(plans: Mapping[str, JobPlan], job: str) -> JobPlan:
    """The plan of a configured job, or a ``JobError`` listing the jobs there are."""
    try:
        return plans[job]
    except KeyError:
        raise JobError(f"unknown job {job!r}",
                       hint=f"jobs: {', '.join(plans) or 'none configured'}") from None


def plan_of_run(plans: Mapping[str, JobPlan],
                adhoc_planner: Callable[[Mapping[str, Any]], JobPlan] | None, run: Any) -> JobPlan:
    """The plan a stored run was made with: its config job, or its ad-hoc spec."""
    if run.job_spec:
        if adhoc_planner is None:
            raise JobError(f"run {run.id} is an ad-hoc run; only the daemon resumes those")
        return adhoc_planner(json.loads(run.job_spec))
    if run.job not in plans:
        raise JobError(f"job {run.job!r} is no longer in the config")
    return plans[run.job]
