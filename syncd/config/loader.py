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
        # utf-8-sig: a file saved by Windows Notepad starts with a byte-order mark
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
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
    raw = tuple(str(p) for p in first["loc"])
    shown, _ = _walk(model, raw)
    key = ".".join(prefix + shown)
    if first["type"] == "extra_forbidden":
        _, owner = _walk(model, raw[:-1])
        allowed = _keys(owner)
        message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        # a secret's value is never echoed, not even a wrongly placed one; nor is a
        # table or a list (a browser recipe): the message names the part that is wrong
        if not isinstance(first.get("input"), dict | list) \
                and not first["type"].endswith("_secret"):
            message += f" (got {first.get('input')!r})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(path, key, message)


def _walk(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
    """Follow ``loc`` through nested models, dicts of them and tagged unions.

    Returns the key path as the user wrote it (a tagged union's tag, which pydantic
    puts in the location, left out) and what is declared there.
    """
    shown: list[str] = []
    current: Any = model
    for part in loc:
        members = _tagged(current)
        if part in members:
            current = members[part]
            continue
        shown.append(part)
        if _is_model(current):
            field = next((f for n, f in current.model_fields.items()
                          if part in (n, f.alias)), None)
            current = field.annotation if field is not None else None
        else:  # a dict[str, Model] keyed by a job name
            args = typing.get_args(current)
            current = args[-1] if args else None
        current = _unwrap(current)
    return tuple(shown), current


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _keys(owner: Any) -> list[str]:
    if not _is_model(owner):
        return []
    return [f.alias or n for n, f in owner.model_fields.items()]


def _tagged(annotation: Any) -> dict[str, type[BaseModel]]:
    """The members of a union tagged by ``type``, by tag; empty for anything else."""
    members = [a for a in typing.get_args(annotation) if _is_model(a)]
    if len(members) < 2 or typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return {}
    found: dict[str, type[BaseModel]] = {}
    for member in members:
        field = member.model_fields.get("type")
        tags = typing.get_args(field.annotation) if field is not None else ()
        if not tags:
            return {}
        found.update({str(t): member for t in tags})
    return found


def _unwrap(annotation: Any) -> Any:
    """``Model | None`` → ``Model``; ``Annotated[X, …]`` → ``X``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if _tagged(annotation):
            return annotation
        models = [a for a in args if _is_model(a)]
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


def check_remote(config: Config, key: str, remote: Any, path: Path | str) -> None:
    """An adapter's ``remote = "NAME"`` must name a ``[remotes.NAME]`` section."""
    if remote is None or remote == "" or remote in config.remotes:
        return
    known = ", ".join(config.remotes) or "none configured"
    raise ConfigError(path, key, f"unknown remote {remote!r}; remotes: {known} "
                      "(add a [remotes.NAME] section)")


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
