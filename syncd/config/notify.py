"""``[notify]`` and ``[jobs.X.webhook]``: who hears about runs, and who may start them.

Declared here, beside the main schema, so the notify plugin and the webhook endpoint
read typed, validated settings (a bad value names its key path like any other key).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd.config.secrets import Secret
from syncd.terms import RUN_STATUSES


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WebhookTrigger(_Section):
    """``[jobs.X.webhook]``: ``POST /v1/hooks/X`` signed with this secret starts a run."""

    secret: Secret = Field(description="HMAC-SHA256 key of X-Syncd-Signature: "
                           "{ credential = … }, { file = … } or { env = … }")


class EmailNotify(_Section):
    """Where notification mails go, and how to reach the SMTP server."""

    host: str = Field(description="SMTP server")
    port: int = Field(587, ge=1, le=65535, description="SMTP port")
    from_: str = Field(alias="from", description="sender address")
    to: list[str] = Field(min_length=1, description="recipients")
    username: str | Secret | None = Field(None, description="SMTP login, if the server "
                                          "wants one")
    password: Secret | None = Field(None, description="SMTP password (a secret)")
    starttls: bool = Field(True, description="upgrade with STARTTLS (false for a plain "
                           "local relay)")
    timeout_s: float = Field(30.0, gt=0, description="give up on a server after this long")


class NotifyConfig(_Section):
    """``[notify]``: one message per finished run whose status is in ``on``, or a digest."""

    on: list[str] = Field(["failed"], description="run statuses that are notified")
    webhook: str | Secret | None = Field(None, description="URL a JSON run summary is "
                                         "POSTed to (a secret when the URL holds a token)")
    email: EmailNotify | None = Field(None, description="mail the summary")
    digest: Literal["off", "daily"] = Field("off", description="off: one message per run; "
                                            "daily: one message a day with its runs")
    digest_at: str = Field("07:00", description="when the daily digest is sent (HH:MM, UTC)")
    attempts: int = Field(5, ge=1, le=20, description="tries per message, with backoff")

    @field_validator("on")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        for status in value:
            if status not in RUN_STATUSES:
                raise ValueError(f"{status!r} is not a run status; use "
                                 f"{', '.join(RUN_STATUSES)}")
        return value

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | Secret | None) -> str | Secret | None:
        if isinstance(value, str) and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("digest_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError("expected a time of day such as \"07:00\" (UTC)")
        return f"{int(match[1]):02d}:{match[2]}"

    @property
    def enabled(self) -> bool:
        return bool(self.on) and (self.webhook is not None or self.email is not None)
