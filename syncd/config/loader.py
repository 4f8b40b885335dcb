"""Reading the config file into a validated ``Config``, with one-line errors."""

from __future__ import annotations

import os
import tomllib
import types
import typing
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from syncd.config.schema import Config
from syncd.errors import ConfigError

DEFAULT_PATH = Path("/etc/syncd/syncd.toml")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--config``, else ``$SYNCD_CONFIG``, else ``/etc/syncd/syncd.toml``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("SYNCD_CONFIG") or DEFAULT_PATH)


def load_config(path: Path) -> Config:
    """Parse and validate ``path``; every problem is a ``ConfigError`` naming the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file (use --config or $SYNCD_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None
    return validate(raw, path)


def validate(raw: dict[str, Any], path: Path | str = "<config>") -> Config:
    """Validate a parsed config mapping."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise describe(exc, path, Config) from None
    _check_dependencies(config, path)
    return config


def describe(
    exc: ValidationError, path: Path | str, model: type[BaseModel], prefix: tuple = ()
) -> ConfigError:
    """Turn pydantic's first error into a ``ConfigError`` naming key path and what is allowed."""
    errors = exc.errors()
    first = errors[0]
    loc = prefix + tuple(str(p) for p in first["loc"])
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(model, tuple(str(p) for p in first["loc"][:-1]))
        message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if not isinstance(first.get("input"), dict):
            message += f" (got {first.get('input')!r})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(path, key, message)


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The keys a model accepts at ``loc``, following nested models and dicts of them."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = field.annotation
        else:  # a dict[str, Model] keyed by a job name
            args = typing.get_args(current)
            current = args[-1] if args else None
        current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``Model | None`` → ``Model``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else annotation
    return annotation


def _check_dependencies(config: Config, path: Path | str) -> None:
    for name, job in config.jobs.items():
        for upstream in job.depends_on:
            if upstream not in config.jobs:
                raise ConfigError(path, f"jobs.{name}.depends_on",
                                  f"unknown job {upstream!r}; jobs: {', '.join(config.jobs)}")
        for field, upstream in job.references.items():
            if upstream not in config.jobs:
                raise ConfigError(path, f"jobs.{name}.references.{field}",
                                  f"unknown job {upstream!r}; jobs: {', '.join(config.jobs)}")
    try:
        dependency_order(config)
    except CycleError as exc:
        cycle = " → ".join(reversed(exc.args[1]))
        raise ConfigError(path, "jobs", f"depends_on and references form a cycle: "
                          f"{cycle} (→ reads 'depends on')") from None


def dependency_order(config: Config) -> list[list[str]]:
    """Jobs in levels: each level depends only on earlier ones, so it can run in parallel."""
    sorter = TopologicalSorter({name: job.upstreams for name, job in config.jobs.items()})
    sorter.prepare()
    levels = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        levels.append(ready)
        sorter.done(*ready)
    return levels
