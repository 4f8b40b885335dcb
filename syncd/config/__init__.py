"""The config: schema, loading and one-line errors."""

from syncd.config.loader import config_path, dependency_order, load_config, validate
from syncd.config.schema import Config, JobConfig
from syncd.config.secrets import Secret

__all__ = ["Config", "JobConfig", "Secret", "config_path", "dependency_order", "load_config",
           "validate"]
