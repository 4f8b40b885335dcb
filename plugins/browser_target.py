"""Browser target: a platform without an API, kept in step by driving its forms (SPEC §9).

The engine's id map is the outbox, as for the REST target: a create is committed as a
``pending`` intent before its steps run, and a resumed run asks the platform first
(``find``: the ``exists`` steps). ``exists`` also runs before every create, so a
record already on the platform (entered by hand, or by a run killed after its
"Save") is adopted, never entered twice. A failed step fails its record only: the
error names the recipe, the step number and selector, and the screenshot, HTML and
trace saved for it; the run goes on with the next record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from syncd.adapters import (
    AsyncRecordTarget,
    Change,
    ItemError,
    Result,
    RunContext,
    TargetCapabilities,
    TargetSchema,
)
from syncd.errors import RemoteRejected

from .browser_artifacts import label_of, named
from .browser_options import BrowserOptions, mapped, recipe, steps
from .browser_session import Browser
from .browser_steps import LoginPage, Outcome, Step, StepFailed, run

REMOTE_ID = "remote_id"
Recipe = list[dict[str, Any]]


class BrowserTarget(AsyncRecordTarget):
    """One record at a time through a platform's web forms, in one headless Chromium."""

    name = "browser"
    description = "web forms through headless Chromium (Playwright): exists/create/update/delete"
    capabilities = TargetCapabilities(update=True, delete=True, lookup=True, concurrency=16)

    class Options(BrowserOptions):
        key: list[str] = Field(["id"], description="the local key of each record")
        exists: Recipe | Literal[False] | None = Field(
            None, description="steps whose present/absent checks find a record already on "
            "the platform (adopted, not created again); false: no such check, on purpose")
        create: Recipe = Field(description="steps that enter a new record")
        update: Recipe | None = Field(None, description="steps that change an entered "
                                      "record ({remote_id} too)")
        delete: Recipe | None = Field(None, description="steps that remove a record, for "
                                      "on_missing = \"delete\" ({remote_id} too)")

        @field_validator("exists", "create")
        @classmethod
        def _steps(cls, value: Any, info: ValidationInfo) -> Any:
            if value is not False and value is not None:
                recipe(value, mapped(info))
            return value

        @field_validator("update", "delete")
        @classmethod
        def _with_id(cls, value: Any, info: ValidationInfo) -> Any:
            if value is not None:
                recipe(value, mapped(info), (REMOTE_ID,))
            return value

        @model_validator(mode="after")
        def _checked(self) -> BrowserTarget.Options:
            if self.exists is None:
                raise ValueError("create has no exists check: add exists = [steps whose "
                                 "present check finds the record on the platform], or write "
                                 "exists = false to create without looking first")
            if not self.create:
                raise ValueError("create needs at least one step")
            return self

    options: BrowserTarget.Options

    async def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        o = self.options
        self.ctx = ctx
        self.browser = Browser(o, ctx)  # nothing launched until a record needs it
        self.recipes: dict[str, list[Step]] = {
            "exists": steps(o.exists or []), "create": steps(o.create),
            "update": steps(o.update, (REMOTE_ID,)), "delete": steps(o.delete, (REMOTE_ID,))}
        self._absent: set[str] = set()  # keys ``find`` just saw missing

    async def close(self) -> None:
        await self.browser.close()

    async def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """Launch Chromium and log in; no record is entered."""
        await self.open(schema, ctx)
        try:
            async with self.browser.page():
                pass
            how = "logged in" if self.browser.login_steps else "reached (no login)"
            return f"{self.options.remote}: {how} with Chromium"
        finally:
            await self.close()

    # -- the engine's calls ---------------------------------------------------------

    async def find(self, change: Change) -> str | None:
        """An interrupted create's record: the ``exists`` steps."""
        if not self.recipes["exists"]:
            return None
        found = await self._attempt(change, self._exists)
        if isinstance(found, Result):
            raise RemoteRejected(found.error.message if found.error else "exists failed",
                                 code="step_failed")
        if found is None:
            self._absent.add(change.key)
        return found

    async def apply(self, change: Change) -> Result:
        if change.kind == "create":
            return await self._attempt(change, self._create)
        if change.kind == "update":
            if not self.recipes["update"]:
                return Result.failed(ItemError("conflict", "not_updatable", f"key "
                                               f"{change.key!r} changed, and the target has "
                                               "no update steps", change.item))
            return await self._attempt(change, self._update)
        if change.kind == "delete" and self.recipes["delete"]:
            return await self._attempt(change, self._delete)
        return Result.failed(ItemError("target", "unsupported", f"{change.kind}: the browser "
                                       "target has no steps for it", change.item))

    # -- one record ---------------------------------------------------------------------

    async def _attempt(self, change: Change, do: Any) -> Any:
        """``do(page, change)``; a session that ended is logged into again and the record
        repeated once; a failed step is this record's error, with its artifacts."""
        async with self.browser.page() as page:
            for attempt in (1, 2):
                seen = self.browser.generation
                try:
                    return await do(page, change)
                except LoginPage:
                    if attempt == 2:
                        return Result.failed(ItemError(
                            "auth", "session_ended", "landed on the login page again right "
                            "after logging in", change.item, retryable=True))
                    self.ctx.log.info("browser session ended; logging in again",
                                      key=change.key)
                    await self.browser.relogin(page, seen)
                except StepFailed as failed:
                    name = failed.recipe or change.kind
                    saved = await self.browser.failed(
                        page, label_of(change.key, name, f"step{failed.step.number}"))
                    return Result.failed(ItemError(
                        "target", "step_failed", self.browser.scrub(
                            f"{name} {failed}{named(saved)}"), change.item))
        raise AssertionError("unreachable")

    async def _run(self, page: Any, name: str, change: Change) -> Outcome:
        values = {**dict((change.sent or {}).get("fields") or {}), **change.record}
        if change.remote_id is not None:
            values[REMOTE_ID] = change.remote_id
        try:
            return await run(page, self.recipes[name], values,
                             base_url=self.browser.base_url,
                             timeout=self.options.step_timeout, pace=self.browser.pace,
                             on_login=self.browser.on_login, state_dir=self.ctx.state_dir)
        except StepFailed as failed:
            failed.recipe = name
            raise

    async def _exists(self, page: Any, change: Change) -> str | None:
        found = await self._run(page, "exists", change)
        return self._remote_id(found, change) if found.decided else None

    async def _create(self, page: Any, change: Change) -> Result:
        checked = change.key in self._absent
        self._absent.discard(change.key)
        if self.recipes["exists"] and not checked:
            found = await self._exists(page, change)
            if found is not None:  # already there: adopted, and made equal when we can
                if self.recipes["update"]:
                    await self._run(page, "update", _with_id(change, found))
                return Result("adopted", found)
        done = await self._run(page, "create", change)
        return Result("created", self._remote_id(done, change))

    async def _update(self, page: Any, change: Change) -> Result:
        done = await self._run(page, "update", change)
        if not done.decided:
            return Result.failed(ItemError("target", "not_found", "the update's check found "
                                           "no such record on the platform", change.item))
        return Result("updated", change.remote_id)

    async def _delete(self, page: Any, change: Change) -> Result:
        await self._run(page, "delete", change)  # a false check: already gone
        return Result("deleted", change.remote_id)

    @staticmethod
    def _remote_id(outcome: Outcome, change: Change) -> str:
        """What ``extract`` put into remote_id, else the local key."""
        return (outcome.extracted or {}).get(REMOTE_ID) or change.remote_id or change.key


def _with_id(change: Change, remote_id: str) -> Change:
    return Change("update", change.key, change.record, change.item, change.content_hash,
                  change.idempotency_key, remote_id, change.sent, change.remote_hash)
