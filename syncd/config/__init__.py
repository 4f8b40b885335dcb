"""The config: schema, loading and one-line errors.

The names below are imported on first use: ``syncd.config.secrets``, which the adapter
contract uses, is then imported without the config's models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.config.loader import config_path, dependency_order, load_config, validate
    from syncd.config.schema import Config, JobConfig
    from syncd.config.secrets import Secret

_HOMES = {"config_path": "loader", "dependency_order": "loader", "load_config": "loader",
          "validate": "loader", "Config": "schema", "JobConfig": "schema", "Secret": "secrets"}

__all__ = ["Config", "JobConfig", "Secret", "config_path", "dependency_order", "load_config",
           "validate"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"syncd.config.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
