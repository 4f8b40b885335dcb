"""Browser source: records read off a platform's pages (SPEC §9; seed 001's bookings).

Logs in like the browser target (kept cookies first), runs ``steps`` to reach the
first page, reads every ``rows`` element's ``fields`` (a selector's text, a
selector's ``@attribute``, or ``@attribute`` of the row itself) in one round trip per
page, and follows ``next`` page by page. Each page is a batch whose checkpoint is the
URL of the next one, so a resumed run opens that URL and reads no committed page
again. A read that reached the last page is complete (``on_missing`` applies).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urljoin

from pydantic import Field, field_validator

from syncd.adapters import AsyncSource, Batch, Checkpoint, RunContext, SourceCapabilities
from syncd.errors import JobError, NetworkError, RemoteRejected

from .browser_options import BrowserOptions, recipe, steps
from .browser_session import Browser
from .browser_steps import LoginPage, StepFailed, run

#: every row's fields at once: [name, selector ("" = the row), attribute ("" = text)]
EXTRACT = """(rows, fields) => rows.map(row => Object.fromEntries(fields.map(
  ([name, selector, attribute]) => {
    const found = selector ? row.querySelector(selector) : row;
    if (!found) return [name, null];
    return [name, attribute ? found.getAttribute(attribute) : found.textContent.trim()];
  })))"""


class BrowserSource(AsyncSource):
    """Rows of a table (or any repeated element) on a platform's pages."""

    name = "browser"
    description = "rows read off web pages through headless Chromium (Playwright), page by page"
    capabilities = SourceCapabilities()

    class Options(BrowserOptions):
        steps: list[dict[str, Any]] = Field([], description="steps that reach the first "
                                            "page (after the login)")
        rows: str = Field(description="selector of one record's element, e.g. tr.booking")
        fields: dict[str, str] = Field(description="name = \"selector\" (its text), "
                                       "\"selector@attribute\" or \"@attribute\" (the row's)")
        next: str = Field("", description="selector of the link to the next page; empty: "
                          "one page")
        max_pages: int = Field(0, ge=0, description="pages one run reads at most (0: all); "
                               "a cut read does not apply on_missing")

        @field_validator("steps")
        @classmethod
        def _steps(cls, value: Any) -> Any:
            recipe(value, ())  # no record yet: its templates name no field
            return value

        @field_validator("fields")
        @classmethod
        def _fields(cls, value: dict[str, str]) -> dict[str, str]:
            for name, where in value.items():
                if not where.strip() or where.strip().endswith("@"):
                    raise ValueError(f"{name}: write \"selector\", \"selector@attribute\" "
                                     "or \"@attribute\"")
            return value

    options: BrowserSource.Options

    def __init__(self, options: Any, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.capabilities = SourceCapabilities()
        self.ctx: RunContext | None = None
        self.browser: Browser | None = None

    @property
    def identifier(self) -> str:
        return self.identifier_override or f"{self.options.remote}:{self.options.rows}"

    def open(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def aclose(self) -> None:
        if self.browser is not None:
            await self.browser.close()
            self.browser = None

    async def check(self, ctx: RunContext) -> str:
        """Launch Chromium and log in; no page of records is read."""
        self.open(ctx)
        self.browser = Browser(self.options, ctx)
        try:
            async with self.browser.page():
                pass
            return f"{self.options.remote}: logged in with Chromium"
        finally:
            await self.aclose()

    async def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                   batch_rows: int) -> AsyncIterator[Batch]:
        state = dict(checkpoint or {})
        if state.get("done"):
            return
        if self.ctx is None:
            raise RuntimeError("open() the source with the run's context before reading")
        unknown = [f for f in fields if f not in self.options.fields]
        if unknown:
            raise JobError(f"source field {unknown[0]!r} is mapped but not among the browser "
                           f"source's fields: {', '.join(self.options.fields)}")
        wanted = [[f, *_where(self.options.fields[f])] for f in fields]
        self.browser = browser = Browser(self.options, self.ctx)
        pages = int(state.get("pages", 0))
        async with browser.page() as page:
            url = state.get("next")
            await self._reach(page, url)
            while True:
                found = await page.locator(self.options.rows).evaluate_all(EXTRACT, wanted)
                pages += 1
                rows = [tuple(r[f] for f in fields) for r in found]
                items = [f"page {pages} row {i}" for i in range(1, len(rows) + 1)]
                url = await self._next(page)
                cut = url is not None and self.options.max_pages and \
                    pages >= self.options.max_pages
                position: Checkpoint = {"pages": pages}
                position |= {"done": True} if url is None or cut else {"next": url}
                if cut:
                    self.capabilities = SourceCapabilities(complete=False)
                yield Batch(rows, items, position, progress=pages)
                if url is None or cut or self.ctx.cancelled():
                    return
                await self._goto(page, url)

    async def _reach(self, page: Any, url: str | None) -> None:
        """The first page to read: the committed next page's URL, else the steps'."""
        if url:
            await self._goto(page, url)
            return
        browser = self.browser
        assert browser is not None
        for attempt in (1, 2):
            seen = browser.generation
            try:
                await run(page, steps(self.options.steps), {}, base_url=browser.base_url,
                          timeout=self.options.step_timeout, pace=browser.pace,
                          on_login=browser.on_login)
                return
            except LoginPage:
                if attempt == 2:
                    raise RemoteRejected("landed on the login page again right after "
                                         "logging in", code="session_ended") from None
                await browser.relogin(page, seen)
            except StepFailed as failed:
                saved = await browser.failed(page, f"source-step{failed.step.number}")
                names = ", ".join(str(p) for p in saved)
                raise RemoteRejected(f"steps {failed}" + (f" (artifacts: {names})"
                                                          if names else ""),
                                     code="step_failed") from None

    async def _goto(self, page: Any, url: str) -> None:
        browser = self.browser
        assert browser is not None
        for attempt in (1, 2):
            seen = browser.generation
            await browser.pace()
            answer = await page.goto(url, timeout=self.options.step_timeout * 1000)
            status = answer.status if answer is not None else 200
            if status >= 500 or status in (408, 429):
                raise NetworkError(f"{url} answered {status}")
            if status >= 400:
                raise RemoteRejected(f"{url} answered {status}", code=f"http_{status}")
            if not browser.on_login(page.url):
                return
            if attempt == 2:
                raise RemoteRejected("landed on the login page again right after logging in",
                                     code="session_ended")
            await browser.relogin(page, seen)

    async def _next(self, page: Any) -> str | None:
        if not self.options.next:
            return None
        link = page.locator(self.options.next).first
        if await page.locator(self.options.next).count() == 0:
            return None
        href = await link.get_attribute("href")
        if href:
            return urljoin(page.url, href)
        assert self.browser is not None
        await self.browser.pace()  # a script's button: where it leads is the next page
        await link.click()
        await page.wait_for_load_state()
        return str(page.url)


def _where(spec: str) -> tuple[str, str]:
    """``"td.date"`` → (td.date, text); ``"a@href"`` → (a, href); ``"@data-id"`` → row's."""
    selector, _, attribute = spec.strip().rpartition("@") if "@" in spec else (spec, "", "")
    return selector.strip(), attribute.strip()
