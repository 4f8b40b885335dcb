"""A careless target for secret tests: its ``check`` puts the token it revealed into
its error message. Whatever an adapter says, syncd must never show the secret."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from syncd import hookimpl
from syncd.adapters import Change, RecordTarget, Result, RunContext, Secret, TargetSchema
from syncd.adapters import Options as AdapterOptions
from syncd.errors import AuthError


class LeakyTarget(RecordTarget):
    name = "leaky"
    description = "a target whose check leaks its token (tests)"

    class Options(AdapterOptions):
        token: Secret = Field(description="the token it reveals")
        key: list[str] = Field(["id"], description="key fields")

    def apply(self, change: Change) -> Result:
        raise AuthError("never sends")

    def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        token = ctx.secrets.reveal(self.options.token, "token")
        raise AuthError(f"the remote refused the token {token} (HTTP 401)")


@hookimpl
def syncd_register_adapters(registry: Any) -> None:
    registry.add_target(LeakyTarget)
