"""What a job's ``[jobs.NAME.target]`` may say for ``type = "sql"``, and the identifier
rule the SQL adapters share (a table or column name goes into SQL text unquoted by the
user, so only letters, digits and ``_``). Split from :mod:`sql_target` (the writes)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from syncd.adapters import RESERVED_TABLES
from syncd.adapters import Options as AdapterOptions

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Options(AdapterOptions):
    table: str = Field("content_index", description="table to upsert into")
    key: list[str] = Field(["external_id"], min_length=1,
                           description="fields identifying a record across runs")

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError("a table name is letters, digits and '_'")
        if value.lower() in RESERVED_TABLES or value.lower().startswith("syncd_"):
            raise ValueError(f"{value} is one of syncd's own tables; choose another name")
        return value
