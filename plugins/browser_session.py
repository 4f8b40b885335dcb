"""One run's browser: Chromium launched once, pages, the form login and its cookies.

Launched on first use (a run with nothing to send starts no browser), closed by
``close`` whatever happened. The login runs once per run, lazily; its cookies are kept
in ``state_dir/browser/REMOTE.json`` (mode 0600, never in the database) and loaded
by later runs, which check them with the login's last ``wait_for`` (the probe) before
trusting them. A step that lands on the login page means the session ended: the
caller logs in again (``relogin``) and repeats its record once. Every page action
waits for the remote's rate limit (``pace``). Tracing starts after the login, so a
trace never holds a typed password.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.adapters import RunContext
from syncd.errors import AuthError, JobError

from . import browser_artifacts as artifacts
from .browser_options import BrowserOptions
from .browser_steps import LoginPage, Step, StepError, StepFailed, parse, run

LOGIN_FIELDS = ("username", "password")


class Browser:
    """Chromium for one run, logged in to one remote."""

    def __init__(self, options: BrowserOptions, ctx: RunContext) -> None:
        self.options, self.ctx = options, ctx
        self.client = ctx.client(options.remote)
        settings = self.client.settings
        self.base_url: str = settings.base_url
        self.auth = settings.auth
        self.login_steps: list[Step] = []
        if getattr(self.auth, "type", "none") == "form":
            try:
                self.login_steps = parse(list(self.auth.steps), LOGIN_FIELDS)
            except StepError as exc:
                raise JobError(f"remotes.{options.remote}.auth.steps: {exc}") from None
        self.login_path = self._login_path()
        self.probe = next((s.target for s in reversed(self.login_steps)
                           if s.action == "wait_for"), "")
        self.state_file = (ctx.state_dir / "browser" / f"{options.remote}.json"
                           if ctx.state_dir else None)
        self.generation = 0  # logins this run; a relogin names the one it saw fail
        self.logged_in = False
        self.secrets: list[str] = []
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._pages: asyncio.Queue[Any] = asyncio.Queue()
        self._made = 0
        self._lock = asyncio.Lock()
        self._starting = asyncio.Lock()
        self._refused: AuthError | None = None  # the run's failed login
        self._trace_lock = asyncio.Lock()  # one chunk started or stopped at a time
        self._tracing = False  # a chunk is being recorded
        self._traced = False  # tracing was started in this context

    def _login_path(self) -> str:
        first = getattr(self.auth, "login_url", "") or next(
            (s.target for s in self.login_steps if s.action == "goto"), "")
        return urlsplit(first).path if first else ""

    def on_login(self, url: str) -> bool:
        """Is ``url`` the login page (the session ended)?"""
        return bool(self.login_path) and urlsplit(url).path == self.login_path

    async def pace(self) -> None:
        """One page action: wait for the remote's rate limit."""
        mark, _ = await self.client.limit.acquire()
        self.client.limit.answered(mark)

    # -- launching ------------------------------------------------------------------

    async def _start(self) -> None:
        async with self._starting:  # pages asked for at once share one browser
            if self._context is None:
                await self._launch()

    async def _launch(self) -> None:
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            raise JobError("the browser adapter needs Playwright: pip install "
                           "'syncd[browser]'") from None
        o = self.options
        self._pw = await async_playwright().start()
        args = [*o.args, *([] if o.sandbox else ["--no-sandbox"])]
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=o.executable or None, headless=o.headless, args=args)
        except Exception as exc:
            await self.close()
            raise JobError(f"Chromium did not start ({o.executable or 'the Playwright build'}): "
                           f"{str(exc).splitlines()[0]}",
                           hint="set [browser] executable = \"/usr/bin/chromium\"") from None
        state = str(self.state_file) if self.state_file and self.state_file.exists() else None
        self._context = await self._browser.new_context(storage_state=state)
        self._context.set_default_timeout(o.step_timeout * 1000)

    @asynccontextmanager
    async def page(self) -> AsyncIterator[Any]:
        """A page of the run's browser, logged in; back to the pool afterwards."""
        await self._start()
        if self._pages.empty() and self._made < self.options.concurrency:
            self._made += 1
            self._pages.put_nowait(await self._context.new_page())
        page = await self._pages.get()
        try:
            await self.ensure(page)
            yield page
        finally:
            self._pages.put_nowait(page)

    # -- logging in -----------------------------------------------------------------

    async def ensure(self, page: Any) -> None:
        """Logged in once per run: the kept cookies if the probe finds them working."""
        if self.logged_in or not self.login_steps:
            return
        async with self._lock:
            if self.logged_in:
                return
            if self._refused is not None:  # one login attempt per run, not one a record
                raise self._refused
            if not (self.state_file and self.state_file.exists() and await self._probe(page)):
                await self._login(page)
            else:
                self.ctx.log.info("browser session reused", remote=self.options.remote)
            self.logged_in = True
            await self._trace_start()

    async def relogin(self, page: Any, seen: int) -> None:
        """The session ended under login ``seen``: log in again, unless another page
        already did."""
        async with self._lock:
            if self.generation != seen:
                return
            if self._refused is not None:
                raise self._refused
            await self._trace_pause()
            await self._context.clear_cookies()
            await self._login(page)
            await self._trace_start()

    async def _probe(self, page: Any) -> bool:
        if not self.probe:
            return False
        try:
            await self.pace()
            await page.goto(self.base_url or "/")
            return not self.on_login(page.url) and await page.locator(self.probe).count() > 0
        except Exception as exc:
            if type(exc).__module__.startswith("playwright"):
                return False
            raise

    async def _login(self, page: Any) -> None:
        try:
            await self._log_in(page)
        except AuthError as exc:
            self._refused = exc
            raise

    async def _log_in(self, page: Any) -> None:
        auth = self.auth
        values = {"username": self.ctx.secrets.reveal(auth.username, "auth.username")
                  if auth.username is not None else "",
                  "password": self.ctx.secrets.reveal(auth.password, "auth.password")
                  if auth.password is not None else ""}
        self.secrets = [v for v in values.values() if v]
        try:
            await run(page, self.login_steps, values, base_url=self.base_url,
                      timeout=self.options.step_timeout, pace=self.pace)
        except StepFailed as failed:
            saved = await artifacts.save(page, self.ctx, f"login-step{failed.step.number}",
                                         None)
            raise AuthError(self.scrub(
                f"remotes.{self.options.remote}: the login failed at {failed}"
                f"{artifacts.named(saved)}")) from None
        if self.probe and (self.on_login(page.url)
                           or await page.locator(self.probe).count() == 0):
            saved = await artifacts.save(page, self.ctx, "login", None)
            raise AuthError(f"remotes.{self.options.remote}: still on the login page after "
                            f"logging in (wrong credentials?){artifacts.named(saved)}")
        self.generation += 1
        self.ctx.log.info("browser logged in", remote=self.options.remote,
                          login=self.generation)
        await self._keep_state()

    async def _keep_state(self) -> None:
        """The session's cookies, for later runs: mode 0600 from the start."""
        if self.state_file is None:
            return
        state = await self._context.storage_state()
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.state_file.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(temp, self.state_file)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    # -- traces ---------------------------------------------------------------------

    async def _trace_start(self) -> None:
        async with self._trace_lock:
            if self._context is None or self._tracing:
                return
            if self._traced:
                await self._context.tracing.start_chunk()
            else:
                await self._context.tracing.start(snapshots=True)
                self._traced = True
            self._tracing = True

    async def _trace_pause(self) -> None:
        async with self._trace_lock:
            if self._tracing:
                self._tracing = False
                await self._context.tracing.stop_chunk()  # dropped: kept on failure only

    async def failed(self, page: Any, label: str) -> list[Path]:
        """A failed step's screenshot, HTML and the trace since the last one saved."""
        async with self._trace_lock:
            return await artifacts.save(page, self.ctx, label,
                                        self._context.tracing if self._tracing else None)

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Close everything this run started, each part even if another fails."""
        for closing in (self._close_context, self._close_browser, self._stop):
            try:
                await closing()
            except Exception as exc:  # closing must go on: no Chromium may outlive the run
                self.ctx.log.warning("closing the browser", error=str(exc).splitlines()[0])

    async def _close_context(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            if self._traced:
                self._tracing = self._traced = False
                await context.tracing.stop()
            await context.close()

    async def _close_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.close()

    async def _stop(self) -> None:
        pw, self._pw = self._pw, None
        if pw is not None:
            await pw.stop()


__all__ = ["Browser", "LoginPage", "StepFailed"]
