"""Email target: new, changed and removed records mailed to people (SPEC §9, seed 001's
agencies without a platform).

The target gathers (``gather``): ``apply`` only collects a change, and the engine keeps
it ``pending`` in the id map until ``finish`` mails it at the end of the run: one digest
per run, or one message per record. What the server accepted becomes ``synced``, so a
change is mailed once; a failed send leaves its records pending, fails the run with a
retryable ``network`` error, and the next attempt or run mails them. Each message's
``Message-ID`` is derived from what it carries, so the resend of a message whose
acceptance a kill cut off has the same id (mail clients show it once).
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

from pydantic import Field, PositiveFloat, field_validator

from syncd.adapters import (
    AsyncRecordTarget,
    Change,
    ItemError,
    Options,
    Result,
    RunContext,
    Secret,
    TargetCapabilities,
    TargetSchema,
)
from syncd.errors import AdapterError

from .email_render import Template, TemplateProblem, check_subject, subject_of, variables
from .email_smtp import Mailer, Server

OUTCOMES: dict[str, Literal["created", "updated", "deleted"]] = {
    "create": "created", "update": "updated", "delete": "deleted"}


class EmailTarget(AsyncRecordTarget):
    """Records mailed over SMTP, as a digest per run or one message per record."""

    name = "email"
    description = "email over SMTP (digest per run or per record; Jinja2 text and HTML)"
    capabilities = TargetCapabilities(update=True, delete=True)
    gather = True

    class Options(Options):
        smtp: str = Field(description="smtp://host:587 (STARTTLS on 587), smtps://host "
                          "(implicit TLS), smtp://127.0.0.1:25 (plain)")
        starttls: bool | None = Field(None, description="require STARTTLS on an smtp:// "
                                      "URL (default: on port 587 only)")
        username: str | Secret | None = Field(None, description="SMTP login, if the "
                                              "server wants one")
        password: Secret | None = Field(None, description="SMTP password (a secret)")
        from_: str = Field(alias="from", description="sender address")
        to: list[str] = Field(min_length=1, description="recipients")
        subject: str = Field("syncd: {count} changes", description="subject: {count}, "
                             "{job}, {run}; per record also {change} and the fields")
        mode: Literal["digest", "per_record"] = Field(
            "digest", description="digest: one message per run | per_record")
        template: str = Field("", description="a Jinja2 file with {% block text %} and "
                              "optionally {% block html %}; empty: the default")
        key: list[str] = Field(["id"], description="the local key of each record")
        timeout: PositiveFloat = Field(30.0, description="seconds to wait for the server")

        @field_validator("smtp")
        @classmethod
        def _url(cls, value: str) -> str:
            Server.parse(value, None)  # a ValueError names the problem
            return value

        @field_validator("template")
        @classmethod
        def _template(cls, value: str) -> str:
            Template.load(value)
            return value

        @field_validator("subject")
        @classmethod
        def _subject(cls, value: str) -> str:
            return check_subject(value)

        @field_validator("to")
        @classmethod
        def _addresses(cls, value: list[str]) -> list[str]:
            for address in value:
                if "@" not in address or any(c in address for c in "\r\n,"):
                    raise ValueError(f"{address!r} is not one email address")
            return value

    options: EmailTarget.Options

    async def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        o = self.options
        self.ctx = ctx
        self.template = Template.load(o.template)
        self.mailer = Mailer(Server.parse(o.smtp, o.starttls), o.timeout, ctx,
                             o.username, o.password)

    async def close(self) -> None:
        await self.mailer.close()

    async def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """Connect, secure and log in; nothing is sent."""
        await self.open(schema, ctx)
        try:
            return await self.mailer.probe()
        finally:
            await self.close()

    async def apply(self, change: Change) -> Result:
        """Gathered: the engine holds it pending until ``finish`` mails it."""
        if change.kind not in OUTCOMES:
            return Result.failed(ItemError("target", "unsupported", f"{change.kind} is not "
                                           "supported by the email target", change.item))
        return Result(OUTCOMES[change.kind], change.remote_id)

    async def finish(self, gathered: list[Change]) -> list[Result]:
        if not gathered:
            return []
        if self.options.mode == "digest":
            try:
                message_id = await self.mailer.send(self._message(gathered))
            except (AdapterError, TemplateProblem) as exc:
                error = self._error(exc, "")
                return [Result.failed(error) for _ in gathered]
            return [Result(OUTCOMES[c.kind], message_id) for c in gathered]
        results = []
        for change in gathered:
            try:
                results.append(Result(OUTCOMES[change.kind],
                                      await self.mailer.send(self._message([change]))))
            except (AdapterError, TemplateProblem) as exc:
                results.append(Result.failed(self._error(exc, change.item)))
        return results

    # -- messages -------------------------------------------------------------------

    def _message(self, changes: list[Change]) -> EmailMessage:
        o, ctx = self.options, self.ctx
        values = variables(changes, job=ctx.job, run=ctx.run_id, mode=o.mode)
        text, html = self.template.render(values)
        names: dict[str, Any] = {"count": values["count"], "job": ctx.job, "run": ctx.run_id}
        if o.mode == "per_record":
            names |= {**changes[0].record, "change": values["changes"][0]["change"],
                      "key": changes[0].key}
        message = EmailMessage()
        message["Subject"] = subject_of(o.subject, names)
        message["From"] = o.from_
        message["To"] = ", ".join(o.to)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self._message_id(changes)
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def _message_id(self, changes: list[Change]) -> str:
        """The same for a resend of the same changes (a kill after the server took it)."""
        digest = hashlib.sha256(self.ctx.job.encode())
        for change in changes:
            digest.update(f"\0{change.key}\0{change.kind}\0{change.content_hash}".encode())
        domain = self.options.from_.rpartition("@")[2].strip("<> ") or "syncd.invalid"
        return f"<{digest.hexdigest()[:32]}.syncd@{domain}>"

    def _error(self, exc: Exception, item: str) -> ItemError:
        if isinstance(exc, TemplateProblem):
            return ItemError("validation", "template", f"{self.ctx.job}.target: {exc}", item)
        assert isinstance(exc, AdapterError)
        return ItemError(exc.error_type, exc.code, str(exc), item, retryable=exc.retryable)
