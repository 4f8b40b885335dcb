"""The config: schema, loading and one-line errors.

The names below are imported on first use: ``syncd.config.secrets``, which the adapter
contract uses, is then imported without the config's models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import lazy_names

if TYPE_CHECKING:
    from syncd.config.loader import config_path, dependency_order, load_config, validate
    from syncd.config.schema import Config, JobConfig
    from syncd.config.secrets import Secret

_HOMES = {"config_path": "loader", "dependency_order": "loader", "load_config": "loader",
          "validate": "loader", "Config": "schema", "JobConfig": "schema", "Secret": "secrets"}

__all__ = ["Config", "JobConfig", "Secret", "config_path", "dependency_order", "load_config",
           "validate"]

__getattr__ = lazy_names(__name__, _HOMES, globals())
